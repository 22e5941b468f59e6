"""IPython start-up file for the chapters' kernels under test (conftest.py): CIFAR-10
"downloads", as on Colab or online.

``keras.datasets.cifar10.load_data`` returns synthetic data in CIFAR-10's exact layout (32x32x3
uint8 images, uint8 labels of shape ``(N, 1)``, 10 classes), so every chapter runs on
CIFAR-shaped images offline. Each class is a colour template plus noise, so models can learn it.
"""

import numpy as np

from normlab.runtime import import_tensorflow

_, _keras = import_tensorflow()


def _synthetic_cifar10(n_train=1200, n_test=400):
    rng = np.random.default_rng(0)
    templates = rng.uniform(0, 255, size=(10, 32, 32, 3))

    def split(n):
        labels = rng.permutation(np.arange(n) % 10)
        images = 0.5 * templates[labels] + 64 + rng.normal(0, 40, size=(n, 32, 32, 3))
        return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.uint8).reshape(-1, 1)

    return split(n_train), split(n_test)


_keras.datasets.cifar10.load_data = _synthetic_cifar10
