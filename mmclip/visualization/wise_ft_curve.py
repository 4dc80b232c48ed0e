"""The WiSE-FT curve: accuracy against the mixing coefficient alpha."""
from typing import List


def plot_wise_ft(results: List[dict],
                 out: str,
                 metric: str = 'accuracy/top1') -> None:
    """Write the accuracy-vs-alpha curve of
    :func:`mmclip.apis.evaluate_wise_ft` as a PNG.

    Args:
        results (list[dict]): ``{'alpha': a, metric: value, ...}`` per alpha.
        out (str): Output ``.png``.
        metric (str): The metric to plot. Defaults to ``'accuracy/top1'``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    alphas = [r['alpha'] for r in results]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(alphas, [r[metric] for r in results], marker='o')
    ax.set_xlabel('alpha (0: zero-shot, 1: fine-tuned)')
    ax.set_ylabel(metric)
    ax.set_title('WiSE-FT')
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
