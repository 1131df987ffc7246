"""A character-level recurrent language model: a window of characters in, the next character's
probabilities out at every position (the lecture's sentence completion).

    characters → Embedding → SimpleRNN | LSTM | GRU (one layer per `units` entry) → Dense softmax

`cell` picks the recurrent layer: a SimpleRNN's state h_t = tanh(W x_t + U h_{t-1} + b) forgets
within a few dozen characters (short-term memory); the LSTM's and GRU's gates let a state carry a
fact (an open bracket, an identifier) across a whole window (long-term memory). The input shape
is (None,): trained on windows, the model completes a prompt of any length.
"""

from __future__ import annotations

import keras
from keras import layers

from pipeline.errors import UserError
from pipeline.models import Family
from pipeline.models.schemas import CharRecurrentParams as Params
from pipeline.specs import TextSpec

CELLS = {"rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}


def check(params: Params, spec: TextSpec) -> None:
    if not params.units or min(params.units) < 1 or params.embedding_dim < 1:
        raise UserError(
            f"model.units must list positive layer sizes and model.embedding_dim be positive "
            f"(got {list(params.units)}, {params.embedding_dim})"
        )
    if not 0 <= params.dropout < 1:
        raise UserError(f"model.dropout must be in [0, 1) (got {params.dropout})")


def build(params: Params, spec: TextSpec) -> keras.Model:
    characters = keras.Input(shape=(None,), dtype="int32", name="characters")
    x = layers.Embedding(spec.vocabulary_size, params.embedding_dim, name="embedding")(characters)
    for i, units in enumerate(params.units):
        recurrent = CELLS[params.cell](
            units, return_sequences=True, dropout=params.dropout, name=f"{params.cell}_{i + 1}"
        )
        x = recurrent(x)
    next_character = layers.Dense(spec.vocabulary_size, activation="softmax", name="next_character")(x)
    return keras.Model(characters, next_character, name=f"char_{params.cell}")


def callbacks(params: Params, x_train, y_train) -> tuple[keras.callbacks.Callback, ...]:
    """Cut the learning rate to 30 % after an epoch that did not lower the validation loss (by
    0.003 nats a character): a high rate learns fast, a lower one then settles (logged per epoch as
    `learning_rate`)."""
    return (keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=0, min_delta=0.003),)


FAMILY = Family(name="char-recurrent", build=build, check=check, callbacks=callbacks)
