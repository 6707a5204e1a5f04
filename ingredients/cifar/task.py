"""CIFAR-10 as a trainer task: its data, network, cross-entropy loss, classification metrics and figures."""
from ingredients.cifar import figures, model
from ingredients.cifar.data import eval_batches, load_splits, train_batches
from ingredients.metrics import ClassificationMetrics
from ingredients.task import Data, Task


class CifarTask(Task):
    score = "acc"  # the run's result is the best validation accuracy

    def create_data(self, device, seed):
        train, val, test, self.classes = load_splits(device=str(device))
        self.train_images = train.images
        self.samples = train.images[:64].cpu(), [self.classes[i] for i in train.labels[:64].tolist()]
        return Data(train_batches(train, seed=seed), eval_batches(val), eval_batches(test))

    def create_model(self):
        return model.build_model(num_classes=len(self.classes), train_images=self.train_images)

    def create_loss(self):
        return model.make_loss()

    def predict(self, network, inputs):
        return model.predict(network, inputs)

    def create_metrics(self):
        return ClassificationMetrics(len(self.classes))

    def visualise_data(self, data, add_artifact):
        add_artifact("train_samples.png", lambda path: figures.save_image_grid(*self.samples, path))

    def visualise_results(self, best_metrics, add_artifact):
        add_artifact("confusion_matrix.png",
                     lambda path: figures.save_confusion_matrix(best_metrics["confusion"], self.classes, path))
