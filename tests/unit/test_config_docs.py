"""print_config shows each key's whole description: Sacred reads only the comment on the key's own line."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILES = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "ingredients").rglob("*.py")
                      if "_ingredient.config\n" in path.read_text())


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_config_key_is_described_on_its_own_line(name):
    source = (ROOT / name).read_text()
    bodies = re.findall(r"_ingredient\.config\ndef \w+\(\)(?: -> None)?:\n((?:    .*\n|\n)+)", source)
    assert bodies, f"{name} has no ingredient config function"
    continued = [line.strip() for body in bodies for line in body.splitlines() if line.strip().startswith("#")]
    assert continued == [], f"{name}: print_config would cut these descriptions short"
