"""Figures logged with runs, drawn on an Agg canvas of their own: no display is needed.

Each function draws one figure from plain data and returns it: objectives put it among a run's
artifacts and the run logs it (`mlflow.log_figure`). Figures are `Figure`s with a `FigureCanvasAgg`,
never pyplot's: the process's pyplot and its backend stay as the caller left them (a notebook's
inline figures), one nobody logs is freed like any other object, and threads (a sweep's trials)
share no state.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **kwargs):
    """A new figure on its own Agg canvas and its axes, as `plt.subplots` returns them."""
    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(nrows, ncols, **kwargs)


def title(figure, label: str) -> None:
    """Title a figure with the run it belongs to (a report shows figures of many runs)."""
    existing = figure.get_suptitle()
    figure.suptitle(f"{label} · {existing}" if existing else label, fontsize=10)
    if figure.get_layout_engine() is None:  # laid out once, when it is saved
        figure.set_layout_engine("tight")


def training_curves(history: dict[str, list[float]], title: str):
    """Loss and every other metric per epoch, train vs validation, one panel each."""
    names = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    fig, axes = subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], label="validation")
        ax.set(title=name, xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return fig


def confusion_matrix(matrix: np.ndarray, class_names: list[str], accuracy: float):
    size = max(4.0, 0.45 * len(class_names) + 2)
    fig, ax = subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set(
        xticks=range(len(class_names)),
        yticks=range(len(class_names)),
        xticklabels=class_names,
        yticklabels=class_names,
        xlabel="predicted",
        ylabel="true",
        title=f"test accuracy {accuracy:.4f}",
    )
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            int(count),
            ha="center",
            va="center",
            fontsize=8,
            color="white" if count > threshold else "black",
            in_layout=False,  # inside the axes: the tight layout need not measure them
        )
    fig.colorbar(image, ax=ax, fraction=0.046)
    return fig


def roc_curve(fpr: np.ndarray, tpr: np.ndarray, at_half: tuple[float, float], auc: float):
    """The test ROC curve, chance, and the point of the 0.5 threshold."""
    fig, ax = subplots(figsize=(4.8, 4.5))
    ax.plot(fpr, tpr, lw=1.5, label=f"ROC-AUC {auc:.4f}")
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="chance")
    ax.plot(*at_half, "o", color="black", label="threshold 0.5")
    ax.set(xlabel="false positive rate", ylabel="true positive rate (recall)", title="ROC curve (test)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def fitted_curve(samples: tuple, truth: tuple, curve_x: np.ndarray, predicted: np.ndarray, test_rmse: float):
    """A 1-D regression: training samples, the true function, the model's curve."""
    fig, ax = subplots(figsize=(7, 4))
    ax.scatter(*samples, s=4, color="lightgrey", label="training samples")
    ax.plot(*truth, color="black", lw=1.2, label="true function")
    ax.plot(curve_x, predicted, color="tab:red", lw=1.5, label=f"model (test RMSE {test_rmse:.4f})")
    ax.set(xlabel="x", ylabel="y", title="fitted curve")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def score_histogram(
    scores: np.ndarray, is_anomaly: np.ndarray, threshold: float, score_name: str, title: str
):
    """Anomaly scores of normal vs anomalous test images, and the threshold chosen on validation data."""
    fig, ax = subplots(figsize=(7, 4))
    bins = np.histogram_bin_edges(scores, bins=40)
    ax.hist(scores[~is_anomaly], bins=bins, alpha=0.6, label=f"normal ({(~is_anomaly).sum()})")
    ax.hist(scores[is_anomaly], bins=bins, alpha=0.6, label=f"anomaly ({is_anomaly.sum()})")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set(xlabel=score_name, ylabel="test images", title=title)
    ax.legend()
    return fig


def reconstructions(images: np.ndarray, reconstructed: np.ndarray, scores: np.ndarray):
    """Top row: test images; bottom row: their reconstructions, each titled with its score."""
    fig, axes = subplots(2, len(images), figsize=(1.3 * len(images), 3), squeeze=False)
    for i, (image, rebuilt, score) in enumerate(zip(images, reconstructed, scores, strict=True)):
        axes[0, i].imshow(image.squeeze(), cmap="gray_r", vmin=0, vmax=1)
        axes[0, i].set_title(f"{score:.3g}", fontsize=8)
        axes[1, i].imshow(np.clip(rebuilt.squeeze(), 0, 1), cmap="gray_r", vmin=0, vmax=1)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle("most normal ... most anomalous test images (top) and reconstructions (bottom)", fontsize=9)
    return fig


def latent_scatter(codes: np.ndarray, labels: np.ndarray, class_names: list[str], is_anomaly: np.ndarray):
    """2-D codes of the test images, coloured by class; anomalies (unseen in training) as crosses."""
    fig, ax = subplots(figsize=(6, 5))
    cmap = matplotlib.colormaps["tab10"].resampled(len(class_names))
    style = dict(c=None, cmap=cmap, vmin=-0.5, vmax=len(class_names) - 0.5)
    for mask, marker, label in ((~is_anomaly, "o", "normal"), (is_anomaly, "x", "anomaly")):
        points = ax.scatter(
            codes[mask, 0], codes[mask, 1], s=12, marker=marker, label=label, **{**style, "c": labels[mask]}
        )
    bar = fig.colorbar(points, ax=ax, ticks=range(len(class_names)))
    bar.ax.set_yticklabels(class_names)
    ax.set(xlabel="code 1", ylabel="code 2", title="test images in the 2-D code space")
    ax.legend()
    return fig


def forecast(dates: np.ndarray, actual: np.ndarray, predicted: np.ndarray, rmse: float):
    """Test period: the actual series against the 1-step and the `horizon`-step-ahead forecasts,
    each drawn at the date it forecasts; the right panel zooms into the last two years."""
    horizon = actual.shape[1]
    fig, axes = subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [2, 1]})
    for ax, last in zip(axes, (len(dates), min(len(dates), 104)), strict=True):
        window = slice(len(dates) - last, None)
        ax.plot(dates[window, 0], actual[window, 0], color="black", lw=1.2, label="actual")
        ax.plot(dates[window, 0], predicted[window, 0], lw=1, label="1 step ahead")
        if horizon > 1:
            ax.plot(dates[window, -1], predicted[window, -1], lw=1, label=f"{horizon} steps ahead")
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelrotation=30)
    axes[0].set(title=f"test period · RMSE {rmse:.3f} over all {horizon} steps", ylabel="value")
    axes[1].set(title="last 104 steps")
    axes[0].legend()
    return fig


def matrices(panels: list[dict], title: str, columns: int = 4):
    """Small matrices as grids with their numbers: the lecture's worked examples.

    Each panel: {"title", "matrix" (2-D), optional "shaded" (a boolean mask, e.g. padding cells),
    optional "box" (row, col, height, width): a window drawn in red}.
    """
    from matplotlib.patches import Rectangle

    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = subplots(rows, columns, figsize=(2.7 * columns, 2.7 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        matrix = np.atleast_2d(np.asarray(panel["matrix"], dtype=float))
        shaded = panel.get("shaded")
        ax.imshow(
            np.where(shaded, 0.35, 0.0) if shaded is not None else np.zeros_like(matrix),
            cmap="Greys",
            vmin=0,
            vmax=1,
        )
        for (i, j), value in np.ndenumerate(matrix):
            text = f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"
            ax.text(
                j, i, text, ha="center", va="center", fontsize=10 if matrix.size <= 25 else 8, in_layout=False
            )
        for row in range(matrix.shape[0] + 1):  # the grid's lines, above the shading
            ax.axhline(row - 0.5, color="black", linewidth=0.8, clip_on=False)
        for column in range(matrix.shape[1] + 1):
            ax.axvline(column - 0.5, color="black", linewidth=0.8, clip_on=False)
        ax.set_title(panel["title"], fontsize=9)
        if panel.get("box"):
            r, c, h, w = panel["box"]
            ax.add_patch(
                Rectangle((c - 0.5, r - 0.5), w, h, fill=False, edgecolor="red", linewidth=2.5, clip_on=False)
            )
    fig.suptitle(title, fontsize=10)
    return fig


def image_drift(train_mean, batch_mean, histograms, worst, title: str):
    """New images against the training split: mean images, intensity histograms, and the
    cumulative distribution of the statistic that moved most (training vs new)."""
    edges, train_counts, batch_counts = histograms
    name, reference, values = worst
    fig, axes = subplots(1, 4, figsize=(13, 3.2), gridspec_kw={"width_ratios": [1, 1, 1.6, 1.6]})
    shown = [np.squeeze(m) if np.squeeze(m).ndim == 2 else np.clip(m, 0, 1) for m in (train_mean, batch_mean)]
    for ax, image, label in zip(axes[:2], shown, ("training mean image", "new mean image"), strict=True):
        ax.imshow(image, cmap="gray_r" if image.ndim == 2 else None, vmin=edges[0], vmax=edges[-1])
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    for counts, label in ((train_counts, "training"), (batch_counts, "new")):
        axes[2].bar(centres, counts / max(counts.sum(), 1), width=width, alpha=0.5, label=label)
    axes[2].set(title="pixel intensities", xlabel="intensity", ylabel="share")
    axes[2].legend(fontsize=8)
    axes[3].plot(reference, (np.arange(len(reference)) + 0.5) / len(reference), label="training")
    ordered = np.sort(values)
    axes[3].step(ordered, np.arange(1, len(ordered) + 1) / len(ordered), where="post", label="new")
    axes[3].set(title=f"{name} (cumulative)", xlabel=name, ylabel="share below")
    axes[3].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def series_drift(dates, residuals, low, high, title: str):
    """New points' residuals (value - seasonal pattern - local trend) within the training band."""
    fig, ax = subplots(figsize=(7, 3.4))
    ax.fill_between(dates, low, high, step="mid", alpha=0.25, label="training period's 99 % band")
    outside = (residuals < low) | (residuals > high)
    ax.plot(dates, residuals, marker="o", ms=3, lw=1, label="new points")
    ax.scatter(dates[outside], residuals[outside], color="red", s=18, zorder=3, label="outside")
    ax.axhline(0, color="black", lw=0.6)
    ax.set(title=title, ylabel="residual")
    ax.tick_params(axis="x", labelrotation=30)
    ax.legend(fontsize=8)
    return fig
