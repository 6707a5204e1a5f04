"""PNG figures attached to a run: a grid of training images and the confusion matrix."""
import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines
import matplotlib.pyplot as plt  # noqa: E402


def save_image_grid(images, labels, path, columns=8):
    """Save uint8 images (N×3×H×W) with their class names as a grid."""
    rows = (len(images) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.2, rows * 1.35))
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label in zip(axes.flat, images, labels):
        ax.imshow(image.permute(1, 2, 0).numpy())
        ax.set_title(label, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_confusion_matrix(confusion, classes, path):
    """Save a confusion matrix (rows: true class, columns: predicted class) with counts in the cells."""
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(confusion.numpy(), cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = confusion.max().item() / 2
    for (row, col), count in zip([(r, c) for r in range(len(classes)) for c in range(len(classes))],
                                 confusion.flatten().tolist()):
        ax.text(col, row, count, ha="center", va="center", fontsize=7, color="white" if count > threshold else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
