# Source: https://github.com/keras-team/keras/issues/11077 ("Continuing training from loaded
# model"): one process trains and saves model.keras; a second process loads it with
# load_model and continues training, here with a lower learning rate (set on the restored
# optimizer, so its state is kept) and a larger batch. The first process is started by this
# script (hooked when this one is). Synthetic data.
import subprocess
import sys

import keras
import numpy as np

rng = np.random.default_rng(11)
x = rng.normal(size=(6000, 20)).astype("float32")
y = (x[:, :4].sum(axis=1, keepdims=True) > 0).astype("float32")

if sys.argv[1:] == ["train"]:
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    model.save("model.keras")
    sys.exit(0)

hooked = "import epochwatch.hook; " if "epochwatch.hook" in sys.modules else ""
code = f"{hooked}import runpy, sys; sys.argv = [{__file__!r}, 'train']; runpy.run_path({__file__!r}, run_name='__main__')"
subprocess.run([sys.executable, "-c", code], check=True)

model = keras.models.load_model("model.keras")
model.optimizer.learning_rate = 2e-4
hist = model.fit(x, y, epochs=10, batch_size=128, verbose=0)
print("resumed", hist.history["loss"][0], "->", hist.history["loss"][-1])
