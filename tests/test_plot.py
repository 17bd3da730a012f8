"""The plots render to PNG without a display."""

from __future__ import annotations

import io

import pandas as pd
import pytest

pytest.importorskip("matplotlib", reason="plots need the 'plot' extra (matplotlib)")

from commgraph.graph import build_graph, plot_degree_distribution, plot_ego, validate  # noqa: E402


@pytest.fixture(scope="module")
def graph():
    senders = [f"u{i % 7}@acme.com" if i % 3 else f"x{i % 4}@vendor.io" for i in range(60)]
    recipients = [f"u{(i * 5) % 7}@acme.com; x{i % 2}@vendor.io" for i in range(60)]
    m = validate(pd.DataFrame({"tenant_id": "acme", "message_id": [str(i) for i in range(60)],
                               "timestamp": pd.date_range("2024-01-01", periods=60, freq="h", tz="UTC"),
                               "sender": senders, "recipients": recipients}),
                 tenants=[{"tenant_id": "acme", "own_domains": ["acme.com"]}])
    return build_graph(m)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def test_plot_ego_renders_png(graph):
    fig = plot_ego(graph, "u1@acme.com", radius=2, max_nodes=5)
    data = _png(fig)
    assert data.startswith(b"\x89PNG") and len(data) > 2000
    assert "u1@acme.com" in fig.axes[0].get_title()


@pytest.mark.parametrize("direction", ["in", "out", "both"])
def test_plot_degree_distribution_renders_png(graph, direction):
    fig = plot_degree_distribution(graph, direction=direction, weighted=direction == "both")
    assert _png(fig).startswith(b"\x89PNG")
    assert len(fig.axes[0].get_lines()) == (2 if direction == "both" else 1)


def test_plot_errors_name_the_parameter(graph):
    with pytest.raises(ValueError, match="'direction' parameter of plot_degree_distribution"):
        plot_degree_distribution(graph, direction="sideways")
    with pytest.raises(Exception, match="is not a node of tenant 'acme'"):
        plot_ego(graph, "nobody@acme.com")


def test_plots_of_a_graph_without_mail_say_so_without_a_warning(graph):
    import warnings

    empty = build_graph(validate(pd.DataFrame({"tenant_id": ["t"], "message_id": ["1"],
                                               "timestamp": ["2024-05-01T09:00Z"], "sender": ["a@t.com"],
                                               "recipients": ["b@t.com"], "direction": ["internal"]})),
                        as_of="2024-05-01T00:00Z")  # nothing before as_of
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (a legend of nothing was matplotlib's UserWarning)
        fig = plot_degree_distribution(empty)
        assert _png(fig).startswith(b"\x89PNG")
    assert [t.get_text() for t in fig.axes[0].texts] == ["no mail in this graph"]
    assert fig.axes[0].get_legend() is None


@pytest.mark.parametrize("weighted", [False, True])
def test_degree_distribution_gives_shares_of_all_nodes_as_networkx_counts_them(graph, weighted):
    # Before: the curve was the share among nodes of degree > 0 only, so it began at 1.0 (a tenant where 282 of
    # 736 nodes received mail read 1.0 at in-degree 1) under an axis saying "share of nodes".
    newsletters = validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1", "2", "3"],
                                         "timestamp": ["2024-01-01T00:00Z"] * 3,
                                         "sender": ["n1@x.com", "n2@y.com", "n3@z.com"], "recipients": "ann@t.com"}),
                           tenants=[{"tenant_id": "t", "own_domains": ["t.com"]}])
    for g in (graph, build_graph(newsletters)):
        nxg = g.to_networkx()
        fig = plot_degree_distribution(g, weighted=weighted)
        ax = fig.axes[0]
        for line, degree in zip(ax.get_lines(), (nxg.out_degree, nxg.in_degree)):  # (out is drawn first)
            deg = pd.Series(dict(degree(weight="count" if weighted else None)))
            assert len(deg) == g.n_nodes
            for x, y in zip(line.get_xdata(), line.get_ydata()):
                assert y == pytest.approx((deg >= x).mean())
            zero = int((deg == 0).sum())
            assert line.get_label().endswith(f"; {zero} node{'s' if zero != 1 else ''} at 0")
        assert ax.get_ylabel() == "share of all nodes with at least x"
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [ln.get_label() for ln in ax.get_lines()]


def test_plot_ego_title_counts_correspondents_as_networkx_does_and_fits(graph):
    # Before: the title counted the centre as a correspondent ("1 correspondents" at radius 0), counted only the
    # nodes max_nodes kept ("5 correspondents within 1 hop" of 28), ran past the figure with a long address, and
    # no legend named the colours.
    import networkx as nx
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    nxg = graph.to_networkx()
    for centre, radius, max_nodes in (("u1@acme.com", 0, 60), ("u1@acme.com", 1, 60), ("u1@acme.com", 2, 5),
                                      ("x1@vendor.io", 1, 3)):
        n = nx.ego_graph(nxg, centre, radius=radius, undirected=True).number_of_nodes() - 1
        title = plot_ego(graph, centre, radius, max_nodes=max_nodes).axes[0].get_title()
        hops = f"within {radius} hop{'s' if radius != 1 else ''}"
        if n + 1 > max_nodes:
            assert f"showing {max_nodes - 1} of {n} correspondents {hops}" in title, title
        else:
            assert f"{n} correspondent{'s' if n != 1 else ''} {hops}" in title and "showing" not in title, title
        assert title.startswith(f"{centre} (tenant acme)\n")
    one = build_graph(validate(pd.DataFrame({"tenant_id": "t", "message_id": ["1"], "timestamp": ["2024-01-01T00:00Z"],
                                             "sender": ["a@t.com"], "recipients": ["b@x.org"]}),
                               tenants=[{"tenant_id": "t", "own_domains": ["t.com"]}]))
    assert plot_ego(one, "a@t.com").axes[0].get_title().endswith("\n1 correspondent within 1 hop")

    long = "first.middle.last.department.division.region@subsidiary.example-holdings.co.uk"
    g = build_graph(validate(pd.DataFrame({"tenant_id": "a-tenant-with-a-long-name", "message_id": ["1"],
                                           "timestamp": ["2024-01-01T00:00Z"], "sender": [long],
                                           "recipients": ["b@t.com"]}),
                             tenants=[{"tenant_id": "a-tenant-with-a-long-name", "own_domains": ["t.com"]}]))
    fig = plot_ego(g, long)
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    box = ax.title.get_window_extent(fig.canvas.get_renderer())
    assert 0 <= box.x0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1
    # The legend names the colours the nodes are drawn in.
    colours = {t.get_text(): h.get_color() for t, h in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)}
    assert colours == {"centre": "tab:red", "internal": "tab:blue"}
    fig = plot_ego(graph, "u1@acme.com")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["centre", "internal", "external"]
