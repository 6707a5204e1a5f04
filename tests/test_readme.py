"""README.md is a guide of at most 300 lines whose links all lead somewhere, and its commands run as written.

The README's other commands run in the tests of their commands; docs/testing.md says which."""
import re
import shlex

from conftest import REPO_ROOT, newest_run, run_experiment

README = REPO_ROOT / "README.md"
PAGES = [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]


def anchor(heading):
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # a `# comment` in a code block is no heading
    return {anchor(heading) for heading in re.findall(r"^#+ (.+)$", text, re.M)}


def test_readme_is_a_guide_of_at_most_300_lines():
    assert len(README.read_text().splitlines()) <= 300


def test_every_link_of_the_readme_and_docs_leads_to_a_page_and_heading_that_exist():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists() or (fragment and fragment not in anchors(linked)):
                broken.append(f"{page.relative_to(REPO_ROOT)}: {target}")
    assert not broken


def readme_command(containing):
    """The README's command line holding `containing`, as arguments, without its comment."""
    [line] = [line for line in README.read_text().splitlines() if containing in line]
    return shlex.split(line.split("  #")[0])


def test_the_readme_epochs_command_trains_that_many_passes(workdir, mongo_url, mongo_db):
    command = readme_command("trainer.epochs=5")
    assert command[:2] == ["python", "experiments/cifar.py"]
    tiny_data = ["data.dataset=synthetic", "data.limit=600", "model.width=4", "trainer.progress=False"]

    result = run_experiment([*command[2:], *tiny_data], workdir, mongo_url, mongo_db.name)

    assert result.returncode == 0, result.stderr
    run = newest_run(mongo_db)
    assert run["status"] == "COMPLETED" and run["config"]["trainer"]["epochs"] == 5
    assert run["config"]["model"]["arch"] == "simple" and run["config"]["data"]["batch_size"] == 256
    # 600 training images (data.limit) in batches of 256 are 2 steps a pass: 5 passes are 10 steps.
    assert "Validation at step 10/10" in run["captured_out"]
