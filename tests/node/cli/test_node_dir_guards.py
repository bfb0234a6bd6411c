"""Real `picogrid` processes: one node per data directory, and no new grid by a typo."""

from __future__ import annotations

from nodeproc import Cluster, free_port, get_json, picogrid, start


def test_a_second_node_on_a_directory_in_use_exits_2_and_the_first_runs_on(tmp_path):
    with Cluster(tmp_path) as c:
        a = c.found("A")
        first = c.start(a)
        second = start(a.dir, wait=False, port=free_port())  # a free port: only the lock stops it
        assert second.popen.wait(timeout=60) == 2
        err = second.logs()
        assert "already in use by a running node" in err and str(first.pid) in err
        assert "Traceback" not in err
        assert first.alive() and get_json(f"{a.url}/v1/info")["agent"] == a.agent_hex
        first.terminate()
        # released on exit: the directory runs again
        again = c.start(a)
        assert get_json(f"{a.url}/v1/info")["agent"] == a.agent_hex and again.alive()


def test_joining_a_grid_the_charter_lacks_is_refused_and_names_the_grids(tmp_path):
    with Cluster(tmp_path) as c:
        a = c.found("A", grid="street")
        c.start(a)
        def args(directory: str, grid: str) -> list:
            return ["init", "--dir", tmp_path / directory, "--name", "T", "--role", "consumer",
                    "--household", "t", "--grid", grid, "--community", "c1",
                    "--join", a.url, "--yes"]

        refused = picogrid(*args("typo", "stret"), check=False)
        assert refused.returncode == 2, refused.stderr
        assert "no grid 'stret'" in refused.stderr and "street" in refused.stderr
        assert "--new-grid" in refused.stderr and "Traceback" not in refused.stderr
        assert not (tmp_path / "typo" / "config.toml").exists()
        assert not (tmp_path / "typo" / "agent.key").exists()
        made = picogrid(*args("typo", "stret"), "--new-grid")
        assert "joined community 'c1'" in made.stdout
        assert (tmp_path / "typo" / "config.toml").exists()
        # the right name needs no flag
        assert "joined community" in picogrid(*args("right", "street")).stdout
