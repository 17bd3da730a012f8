"""Pictures of a CommGraph (the ``plot`` extra: matplotlib, imported only when drawing).

Figures are built with ``matplotlib.figure.Figure`` rather than pyplot, so no
display or GUI backend is needed; notebooks show the returned figure.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ._commgraph import CommGraph
from ._errors import CommGraphError, ConfigError, plural

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

    The centre is red; a legend names the colours. The title gives the centre, its
    tenant and how many correspondents (nodes other than the centre) lie within
    ``radius`` hops, with how many are shown when ``max_nodes`` cuts them.

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
    >>> print(fig.axes[0].get_title())
    a@t.com (tenant t)
    1 correspondent within 1 hop
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['centre', 'external']
    """
    import networkx as nx

    Figure = _matplotlib()  # noqa: F841 - fail early with the extra's name
    if not isinstance(max_nodes, (int, np.integer)) or max_nodes < 1:
        raise ConfigError(f"The 'max_nodes' parameter of plot_ego must be an int >= 1. Got {max_nodes!r} instead.")
    ego = G.ego(address, radius)
    centre = ego.node_id(address)
    correspondents = ego.n_nodes - 1  # (the centre is none of its own)
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
    ax.legend(handles=_legend_handles(internal, centre), loc="best", fontsize=7)
    ax.set_title(_ego_title(address, G.tenant_id, correspondents, ego.n_nodes - 1, radius), fontsize=10)
    ax.set_axis_off()
    return fig


def _ego_title(address: str, tenant_id: str | None, correspondents: int, shown: int, radius: int,
               width: int = 60) -> str:
    """The title of :func:`plot_ego`, wrapped to ``width`` characters: a long address ran past the figure.

    Examples
    --------
    >>> print(_ego_title("ann@acme.com", "acme", 28, 4, 1))
    ann@acme.com (tenant acme)
    showing 4 of 28 correspondents within 1 hop (the busiest)
    """
    import textwrap

    within = f"within {plural(radius, 'hop')}"
    if shown < correspondents:
        count = f"showing {shown:,} of {correspondents:,} correspondents {within} (the busiest)"
    else:
        count = f"{plural(correspondents, 'correspondent')} {within}"
    return "\n".join(textwrap.fill(line, width) for line in (f"{address} (tenant {tenant_id})", count))


def _legend_handles(internal: np.ndarray, centre: int) -> list:
    """Legend entries for the colours of :func:`plot_ego`: the centre, and internal and external nodes present."""
    from matplotlib.lines import Line2D

    others = np.delete(internal, centre)
    kinds = [("centre", "tab:red", True), ("internal", "tab:blue", others.any()),
             ("external", "tab:orange", (~others).any())]
    return [Line2D([], [], linestyle="", marker="o", color=colour, label=label)
            for label, colour, present in kinds if present]


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
        ax.step(values, ccdf, where="post", label=f"{label}; {plural(zero, 'node')} at 0")
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
