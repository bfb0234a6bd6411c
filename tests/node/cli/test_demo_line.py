"""The demo's terminal line: at most 100 columns whatever the PicoGrid, batteries by name."""

from node.cli.launcher import LEGEND, LINE_WIDTH, interval_line


def view(batteries: dict[str, int], disputed: int = 0, failed: int = 0) -> dict:
    agents = {f"{i:064x}": {"name": n, "soc_wh": wh, "charged_wh": 0, "discharged_wh": 0}
              for i, (n, wh) in enumerate(reversed(batteries.items()))}
    agents["f" * 64] = {"name": "Solar", "generation_wh": 17500, "sold_wh": 0}
    agents["e" * 64] = {"name": "Home", "demand_wh": 12345, "from_generation_wh": 0,
                        "from_storage_wh": 0, "from_grid_wh": 0}
    trades = [{"status": "confirmed"}] * 12 + [{"status": "disputed"}] * disputed \
        + [{"status": "failed"}] * failed
    return {"interval": 123, "agents": agents, "trades": trades}


def test_the_kit_line_lists_batteries_by_name():
    line = interval_line(view({"Home battery": 1450, "Neighbourhood battery": 8590}), 0.5)
    assert "stored 1450+8590 Wh" in line and line.endswith("local 50%")
    assert len(line) <= LINE_WIDTH and len(LEGEND) <= LINE_WIDTH


def test_many_batteries_disputes_and_a_note_still_fit():
    many = {f"Battery {i}": 10000 + i for i in range(9)}
    line = interval_line(view(many, disputed=3), 1.0, "settled by 6 of 7 agents")
    rows = line.split("\n")
    assert all(len(r) <= LINE_WIDTH for r in rows), rows
    assert f"stored {sum(many.values())} Wh" in rows[0] and "trades 12, 3 DISPUTED" in line
    assert "(settled by 6 of 7 agents)" in line and "local 100%" in line


def test_failed_trades_are_counted_apart_from_disputed_ones():
    # A node down through the final deadline never settles: its trades fail, nobody disputes.
    line = interval_line(view({"Home battery": 1450}, failed=2), 0.5, "settled by 6 of 7 agents")
    assert "trades 12, 2 failed" in line and "DISPUTED" not in line
    assert all(len(r) <= LINE_WIDTH for r in line.split("\n"))
