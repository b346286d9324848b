"""The trials table's "peak GPU mem" column, in a real browser, for trials run by a real
worker over the fake torch.cuda of test_gpu_memory.py."""

from __future__ import annotations

from conftest import trials_of
from test_dashboard import browser, expect, log_in, page, row  # noqa: F401 (fixtures)
from test_gpu_memory import write_experiment


def test_the_trials_table_shows_each_trials_peak_gpu_memory(
    start_server,
    workers,
    tmp_path,
    page,  # noqa: F811 (the fixture imported above)
    monkeypatch,
):
    monkeypatch.delenv("GRIDEXP_SHARED_GPU", raising=False)
    directory = tmp_path / "server"
    write_experiment(directory)
    server = start_server(directory)
    worker = workers(server, tmp_path / "w", "--download_scripts", "--save_models=False")
    assert worker.wait() == 0, worker.output()
    ids = {t["hyperparameters"]["index"]: t["id"] for t in trials_of(server, "gpumem")}

    log_in(page, server.url)
    expect(page.locator('#trials-head th[data-column="peak_gpu_memory"]')).to_contain_text(
        "peak GPU mem"
    )
    cell = 'td[data-column="peak_gpu_memory"]'
    expect(row(page, ids[0]).locator(cell)).to_have_text("")
    expect(row(page, ids[1]).locator(cell)).to_have_text("2.8 GiB")
    expect(row(page, ids[1]).locator(cell)).to_have_attribute("title", "3,000,000,000 bytes")
    expect(row(page, ids[3]).locator(cell)).to_have_text("8.4 GiB")
