"""Image-folder classification as a trainer task: images read from files by DataLoader workers, CIFAR's networks
(the `model` ingredient of ingredients/cifar), cross-entropy loss, classification metrics and figures."""
import json

import torch

from ingredients.cifar import figures, model
from ingredients.images.data import datasets, read_image, scan_folder
from ingredients.metrics import ClassificationMetrics
from ingredients.task import Task

SAMPLES = 64  # training images in the train_samples.png figure


class ImageFolderTask(Task):
    score = "acc"  # the run's result is the best validation accuracy

    def create_data(self, device, seed):
        self.folder = scan_folder()
        self.classes = self.folder.classes
        self.data = datasets(self.folder)
        return self.data

    def create_model(self):
        return model.build_model(num_classes=len(self.folder.classes))

    def create_loss(self):
        return model.make_loss()

    def predict(self, network, inputs):
        return model.predict(network, inputs)

    def create_metrics(self):
        return ClassificationMetrics(len(self.folder.classes))

    def visualise_data(self, data, add_artifact):
        train = self.data.train
        images = torch.stack([read_image(train.root / path, train.size) for path in train.files[:SAMPLES]])
        labels = [self.folder.classes[label] for label in train.labels[:SAMPLES]]
        add_artifact("train_samples.png", lambda path: figures.save_image_grid(images, labels, path))
        if self.folder.seeded:  # the drawn split, so that another tool can use the same one
            splits = {name: [path for path, _ in items] for name, items in self.folder.splits.items()}
            add_artifact("data_splits.json", lambda path: path.write_text(json.dumps(splits, indent=1)))

    def visualise_results(self, best_metrics, add_artifact):
        add_artifact("confusion_matrix.png",
                     lambda path: figures.save_confusion_matrix(best_metrics["confusion"], self.folder.classes, path))
