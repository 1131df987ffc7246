"""The notebooks' exercises answered, kept out of the notebooks: for each exercise (its cells are
tagged answer:<id> … check:<id>), the code that replaces its answer cell, right and wrong.
tests/lecture/test_exercises.py runs the check cell after each: the right one must pass, the
wrong one must fail."""

RIGHT = {
    "perceptron-and": "WEIGHTS = [1, 1]\nBIAS = -1.5",
    "overshoot": "LEARNING_RATE = 0.5",
    "deep-weights": "DEEP_WEIGHTS = (1 + 1) * 32 + 2 * (32 + 1) * 32 + (32 + 1) * 1",
    "output-4x4": "PADDING = 1\nSTRIDE = 2",
    "conv-params": "CONV_PARAMS = (3 * 3 * 32 + 1) * 64",
    # 16,362 parameters: cnn-valid's convolutions (fewer filters), no dense layer; batch norm's
    # momentum as cnn's auto knob sets it for a few steps an epoch (Keras' 0.99 lags behind)
    "small-cnn": (
        "import keras\nfrom keras import layers\n"
        "def block(filters):\n"
        "    return [layers.Conv2D(filters, 3, use_bias=False), layers.BatchNormalization(momentum=0.5),"
        " layers.Activation('relu')]\n"
        "my_cnn = keras.Sequential([keras.Input(shape=(8, 8, 1)), *block(32), *block(48),"
        " layers.MaxPooling2D(), layers.Flatten(), layers.Dense(10, activation='softmax')],"
        " name='small-cnn')\n"
        "my_cnn.compile(optimizer=keras.optimizers.Adam(0.003), loss='sparse_categorical_crossentropy')"
    ),
    "feature-length": "FEATURES = 4 * 4 * 64",
    "trainable-head": "TRAINED_WEIGHTS = (4 * 4 * 64 + 1) * 10",
    "vanishing": "import math\nSTEPS = math.ceil(math.log(0.01) / math.log(0.9))",
    "lstm-params": "LSTM_PARAMS = 4 * ((1 + 32) * 32 + 32)",
    "pca-components": "COMPONENTS = 18",
    "roc-auc": "AUC = 8 / 9",
}

WRONG = {
    "perceptron-and": "WEIGHTS = [1, 1]\nBIAS = -0.5",  # OR
    "overshoot": "LEARNING_RATE = 0.1",  # the example's own rate: J falls
    "deep-weights": "DEEP_WEIGHTS = 32 + 2 * 32 * 32 + 32",  # no biases
    "output-4x4": "PADDING = 'valid'\nSTRIDE = 1",  # 6x6
    "conv-params": "CONV_PARAMS = 3 * 3 * 32 * 64",  # no bias
    "small-cnn": (  # small enough, but far behind: one narrow convolution, a few steps
        "import keras\nfrom keras import layers\n"
        "my_cnn = keras.Sequential([keras.Input(shape=(8, 8, 1)), layers.Conv2D(2, 3, activation='relu'),"
        " layers.Flatten(), layers.Dense(10, activation='softmax')], name='tiny-cnn')"
    ),
    "feature-length": "FEATURES = 8 * 8 * 64",  # before the pooling
    "trainable-head": "TRAINED_WEIGHTS = (4 * 4 * 64 + 1) * 5",  # five classes, not ten
    "vanishing": "STEPS = 10",
    "lstm-params": "LSTM_PARAMS = 4 * (1 + 32) * 32",  # no biases
    "pca-components": "COMPONENTS = 8",
    "roc-auc": "AUC = 0.5",
}

# what an exercise's cells read that the notebook made before them
BEFORE = {"small-cnn": 'pipeline.train("cnn-valid", epochs=EPOCHS, limit=LIMIT)'}
# the exercises whose cells train (marked integration); and those that read pretrain's hub module
TRAINS = {"small-cnn"}
READS_MODULE = {"feature-length", "trainable-head"}
# the notebook's parameters in these tests (a few epochs on a small subset)
SETTINGS = "EPOCHS = 3\nLIMIT = 300"
