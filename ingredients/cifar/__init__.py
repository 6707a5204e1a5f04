"""CIFAR-10 image classification: the `data` and `model` ingredients and the task that binds them to the trainer."""
