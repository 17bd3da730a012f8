"""Pictures of a CommGraph (the ``plot`` extra: matplotlib, imported only when drawing).

Figures are built with ``matplotlib.figure.Figure`` rather than pyplot, so no
display or GUI backend is needed; notebooks show the returned figure.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ._commgraph import CommGraph
from ._errors import CommGraphError, ConfigError

__all__ = ["plot_ego", "plot_degree_distribution"]


def _matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CommGraphError("plotting requires matplotlib to be installed; install the 'plot' extra: "
                             "pip install 'commgraph[plot]'") from exc
    return Figure


def _figure_and_axes(ax: Any, figsize: tuple[float, float]):
    if ax is not None:
        return ax.figure, ax
    Figure = _matplotlib()
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def plot_ego(G: CommGraph, address: str, radius: int = 1, *, ax: Any = None, max_nodes: int = 60,
             random_state: int = 0) -> Any:
    """Draw the neighbourhood of one address: internal nodes blue, external orange, width ~ log(count).

    Parameters
    ----------
    G : CommGraph
    address : str
        The centre.
    radius : int, default 1
        Hops from the centre, both directions (:meth:`CommGraph.ego`).
    ax : matplotlib Axes, optional
        Draw into it; default: a new figure.
    max_nodes : int, default 60
        Keep the centre and its busiest correspondents up to this many nodes.
    random_state : int, default 0
        Seed of the spring layout.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from commgraph.graph import validate, build_graph, plot_ego
    >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2"],
    ...     "timestamp": ["2024-01-01T00:00Z"] * 2, "sender": ["a@t.com", "b@x.org"],
    ...     "recipients": ["b@x.org", "a@t.com"]}), tenants=[{"tenant_id": "t", "own_domains": ["t.com"]}]))
    >>> fig = plot_ego(g, "a@t.com")
    >>> type(fig).__name__
    'Figure'
    """
    import networkx as nx

    Figure = _matplotlib()  # noqa: F841 - fail early with the extra's name
    if not isinstance(max_nodes, (int, np.integer)) or max_nodes < 1:
        raise ConfigError(f"The 'max_nodes' parameter of plot_ego must be an int >= 1. Got {max_nodes!r} instead.")
    ego = G.ego(address, radius)
    centre = ego.node_id(address)
    if ego.n_nodes > max_nodes:
        busy = ego.nodes["sent"].to_numpy() + ego.nodes["received"].to_numpy()
        busy[centre] = np.iinfo(np.int64).max
        keep = np.argsort(-busy, kind="stable")[:max_nodes]
        ego = ego.subgraph(keep)
        centre = ego.node_id(address)
    nxg = ego.to_networkx()
    fig, ax = _figure_and_axes(ax, (7, 6))
    pos = nx.spring_layout(nxg, seed=random_state, weight=None)
    internal = ego.nodes["internal"].to_numpy(dtype=bool)
    names = ego.nodes["address"].tolist()
    colours = ["tab:red" if i == centre else ("tab:blue" if internal[i] else "tab:orange") for i in range(len(names))]
    sizes = 80 + 40 * np.log1p(ego.nodes["sent"].to_numpy() + ego.nodes["received"].to_numpy())
    widths = [0.5 + np.log1p(d["count"]) for _, _, d in nxg.edges(data=True)]
    nx.draw_networkx_edges(nxg, pos, ax=ax, width=widths, alpha=0.5, arrows=True, arrowsize=8,
                           node_size=sizes.tolist())
    nx.draw_networkx_nodes(nxg, pos, nodelist=names, ax=ax, node_color=colours, node_size=sizes.tolist())
    nx.draw_networkx_labels(nxg, pos, ax=ax, font_size=7)
    ax.set_title(f"{address}: {ego.n_nodes} correspondents within {radius} hop{'s' if radius != 1 else ''} "
                 f"(tenant {G.tenant_id})")
    ax.set_axis_off()
    return fig


def plot_degree_distribution(G: CommGraph, *, direction: Literal["in", "out", "both"] = "both",
                             weighted: bool = False, ax: Any = None) -> Any:
    """Complementary cumulative distribution of node degrees, log-log.

    The curve at ``x`` is the share of all the graph's nodes whose degree is at
    least ``x``. A log axis has no 0, so nodes of degree 0 are not drawn: the
    curve starts below 1 when there are any, and the legend says how many.

    Parameters
    ----------
    G : CommGraph
    direction : {'in', 'out', 'both'}, default 'both'
    weighted : bool, default False
        Messages instead of distinct correspondents.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from commgraph.graph import validate, build_graph, plot_degree_distribution
    >>> g = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1"],
    ...     "timestamp": ["2024-01-01T00:00Z"], "sender": ["a@t.com"], "recipients": ["b@t.com; c@t.com"],
    ...     "direction": "internal"})))
    >>> ax = plot_degree_distribution(g, direction="in").axes[0]
    >>> ax.get_xlabel()
    'distinct correspondents'
    >>> ax.get_lines()[0].get_ydata().tolist()  # 2 of the 3 nodes received mail (from 1 correspondent)
    [0.6666666666666666]
    >>> ax.get_legend().get_texts()[0].get_text()
    'in (heard from); 1 node at 0'
    """
    from ._metrics import in_degree, out_degree

    if direction not in ("in", "out", "both"):
        raise ConfigError(f"The 'direction' parameter of plot_degree_distribution must be 'in', 'out' or 'both'. "
                          f"Got {direction!r} instead.")
    fig, ax = _figure_and_axes(ax, (6, 4.5))
    series = {"out (sent to)": out_degree, "in (heard from)": in_degree}
    if direction != "both":
        series = {k: v for k, v in series.items() if k.startswith(direction)}
    drawn = 0
    for label, fn in series.items():
        deg = fn(G, weighted=weighted)
        deg = np.sort(deg[deg > 0])
        if not len(deg):
            continue
        values, first = np.unique(deg, return_index=True)
        # Shares of all nodes, as the axis says: over those of degree > 0 alone, the curve always began at 1.
        ccdf = (len(deg) - first) / G.n_nodes
        zero = G.n_nodes - len(deg)
        ax.step(values, ccdf, where="post", label=f"{label}; {zero:,} node{'s' if zero != 1 else ''} at 0")
        drawn += 1
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("messages" if weighted else "distinct correspondents")
    ax.set_ylabel("share of all nodes with at least x")
    ax.set_title(f"Degree distribution, tenant {G.tenant_id} ({G.n_nodes:,} nodes)")
    if drawn:
        ax.legend()
    else:  # (a legend of nothing is matplotlib's warning; an empty frame would leave the reader guessing)
        ax.text(0.5, 0.5, "no mail in this graph", ha="center", va="center", transform=ax.transAxes)
    return fig
