"""The local embedder's calibration without a model: the search and the choice on a simulated
machine (rates from a formula, a fake clock), the plan, pinning, the cache key and file; and the
switch between thread counts on a simulated load."""

from __future__ import annotations

import json
import math

import pytest

from autoembed.embedders import calibration as cal
from autoembed.embedders.calibration import Calibration, Candidate, Options, Plan, Search, choose, climb
from autoembed.embedders.switching import ThreadSwitch

WINDOW = 256  # buckets 20, 160 and 256 tokens


class Machine:
    """Rates from `rate_of(candidate, tokens, size, clock)`; every timed cell costs 1 fake second."""

    def __init__(self, rate_of):
        self.rate_of = rate_of
        self.now = 0.0
        self.loaded: list[Candidate] = []

    def encoder(self, candidate: Candidate):
        if candidate not in self.loaded:
            self.loaded.append(candidate)

        def encode(texts):
            return None

        encode.candidate = candidate
        return encode

    def rate(self, encode, texts, clock):
        self.now += 1
        return self.rate_of(encode.candidate, len(texts[0]), len(texts), clock)

    def clock(self):
        return self.now

    def search(self, options: Options, budget: float = 1000) -> Search:
        return Search(self.encoder, lambda tokens, count: ["x" * tokens] * count, WINDOW, options, budget,
                      rate=self.rate, clock=self.clock)


def peaked(best_size: dict[int, int], speed: float = 100.0):
    """A rate curve per bucket with its top at best_size[tokens]: 10% lower per doubling away."""
    return lambda size, tokens: speed / tokens * (1 - 0.1 * abs(math.log2(size / best_size[tokens])))


AUTO = Options.from_pins(None, 0, 0, cpus=2)


def test_the_search_finds_each_buckets_best_size():
    curve = peaked({20: 16, 160: 2, 256: 1})
    machine = Machine(lambda c, tokens, size, clock: curve(size, tokens) * (1 if c.threads == 1 else 0.5))
    search = machine.search(AUTO)
    plan = search.run()
    # sizes measured on one thread; the plan keeps both thread counts for the switch
    assert plan == Plan("onnx", (1, 2), ((20, 16), (160, 2), (256, 1)))
    assert {(m.threads, m.clock) for m in search.measurements} == {(1, "cpu")}
    assert not search.exhausted
    # long texts are never measured in forward passes of more than TOKENS_PER_CELL tokens
    assert all(m.size * m.tokens <= cal.TOKENS_PER_CELL for m in search.measurements)


@pytest.mark.parametrize(("torch_speed", "expected"), [(1.2, "torch"), (1.01, "onnx"), (0.7, "onnx")])
def test_the_faster_engine_wins_and_a_near_tie_goes_to_onnx(torch_speed, expected):
    curve = peaked({20: 32, 160: 4, 256: 4})

    def rate(c, tokens, size, clock):
        speed = torch_speed if c.backend == "torch" else 1.0
        return curve(size, tokens) * speed * (1 if c.threads == 1 else 0.5)

    search = Machine(rate).search(AUTO)
    assert search.run().backend == expected
    torch_cells = sum(m.backend == "torch" for m in search.measurements)
    if torch_speed < cal.ENGINE_SCREEN:  # screened out after its first bucket, not searched
        assert torch_cells == 1
    else:
        assert torch_cells >= 3


def test_an_engine_much_slower_in_one_bucket_loses_though_faster_in_the_others():
    curve = peaked({20: 16, 160: 4, 256: 4})

    def rate(c, tokens, size, clock):
        speed = {20: 1.1, 160: 1.1, 256: 0.8}[tokens] if c.backend == "torch" else 1.0
        return curve(size, tokens) * speed * (1 if c.threads == 1 else 0.5)

    assert Machine(rate).search(AUTO).run().backend == "onnx"


def test_a_budget_cuts_the_search_short_and_says_so():
    curve = peaked({20: 16, 160: 4, 256: 2})
    machine = Machine(lambda c, tokens, size, clock: curve(size, tokens))
    search = machine.search(AUTO, budget=3)
    plan = search.run()
    assert search.exhausted
    assert len(search.measurements) == 3
    # the short bucket was measured; the others take the nearest measured bucket's size
    measured_short = {m.size for m in search.measurements if m.tokens == 20}
    assert plan.sub_batch(20) in measured_short
    assert plan.sub_batch(160) == plan.sub_batch(256) == plan.sub_batch(20)
    assert plan.backend == "onnx"


def test_pinned_dimensions_are_not_searched():
    curve = peaked({20: 16, 160: 4, 256: 2})
    machine = Machine(lambda c, tokens, size, clock: curve(size, tokens))
    search = machine.search(Options.from_pins("torch", 2, 0, cpus=2))
    plan = search.run()
    assert (plan.backend, plan.threads) == ("torch", (2,))
    assert {(m.backend, m.threads, m.clock) for m in search.measurements} == {("torch", 2, "wall")}


def test_options_try_int8_only_when_named_and_pin_what_is_set():
    assert AUTO.backends == ("onnx", "torch") and "onnx-int8" not in AUTO.backends
    assert AUTO.threads == (1, 2) and AUTO.sizes == cal.SIZES and not AUTO.pinned
    assert Options.from_pins("onnx-int8", 0, 0, cpus=2).backends == ("onnx-int8",)
    assert not Options.from_pins("onnx", 1, 0, cpus=2).pinned
    assert Options.from_pins("onnx", 1, 16, cpus=2).pinned
    # threads are switched while the embedder runs: leaving them open needs no calibration
    unpinned_threads = Options.from_pins("onnx", 0, 16, cpus=2)
    assert unpinned_threads.pinned and unpinned_threads.threads == (1, 2)


@pytest.mark.parametrize(("cpus", "counts"), [(1, (1,)), (2, (1, 2)), (6, (1, 2, 4, 6)), (8, (1, 2, 4, 8))])
def test_thread_counts_go_up_to_the_usable_cpus(cpus, counts):
    assert cal.thread_counts(cpus) == counts


def test_a_text_goes_to_the_bucket_nearest_its_length_on_a_log_scale():
    plan = Plan("onnx", (1, 2), ((20, 32), (160, 4), (256, 2)))
    assert [plan.sub_batch(n) for n in (2, 56, 57, 202, 203, 256, 5000)] == [32, 32, 4, 4, 2, 2, 2]
    assert [plan.bucket(n) for n in (2, 57, 5000)] == [0, 1, 2]
    # on two threads a pass needs at least 2 x TOKENS_PER_THREAD tokens: 32 short, 4 medium or long texts
    assert [plan.sub_batch(n, threads=2) for n in (20, 160, 256)] == [32, 4, 4]
    assert Plan("onnx", (1, 2), ((20, 64), (256, 8))).sub_batch(20, threads=2) == 64  # never smaller
    assert plan.describe() == "onnx, 1 or 2 threads by speed, sub-batch 32 (20 tokens), 4 (160), 2 (256)"
    assert Plan("torch", (1,), ((20, 8),)).describe() == "torch, 1 thread, sub-batch 8 (20 tokens)"
    assert Plan.from_json(json.loads(json.dumps(plan.as_json()))) == plan


@pytest.mark.parametrize("data", [{}, {"backend": "onnx", "threads": [1], "sub_batches": []},
                                  {"backend": "onnx", "threads": [1], "sub_batches": [[20, 0]]},
                                  {"backend": "onnx", "threads": [1], "sub_batches": [[160, 4], [20, 8]]},
                                  {"backend": "onnx", "threads": [], "sub_batches": [[20, 8]]},
                                  {"backend": "onnx", "threads": 1, "sub_batches": [[20, 8]]},
                                  {"backend": "onnx", "threads": ["x"], "sub_batches": [[20, 8]]}])
def test_a_damaged_plan_is_refused(data):
    with pytest.raises(ValueError):
        Plan.from_json(data)


def test_choose_scores_a_candidate_by_its_worst_bucket():
    a, b, c = Candidate("onnx", 1), Candidate("torch", 1), Candidate("onnx", 2)
    rates = {a: {20: 100, 160: 10}, b: {20: 120, 160: 7}, c: {20: 500}}  # c lacks a bucket
    assert choose(rates, [a, b, c], 0.0) == a  # b is at 0.7 of the best in the long bucket
    assert choose({a: {20: 100}, b: {20: 102}}, [a, b], 0.03) == a  # within the margin: preferred
    assert choose({a: {20: 100}, b: {20: 110}}, [a, b], 0.03) == b
    with pytest.raises(ValueError):
        choose({}, [], 0.0)


@pytest.mark.parametrize(("rates", "start", "best", "tried"), [
    ({1: 5, 2: 6, 4: 7, 8: 9, 16: 8}, 4, 8, [4, 8, 16]),         # up, past the top, back
    ({1: 9, 2: 8, 4: 7, 8: 6, 16: 5}, 4, 1, [4, 8, 2, 1]),       # first step up fails: down
    ({1: 5, 2: 9, 4: 7, 8: 6, 16: 5}, 4, 2, [4, 8, 2, 1]),
    ({1: 5, 2: 5, 4: 9, 8: 6, 16: 5}, 4, 4, [4, 8, 2]),
])
def test_climb(rates, start, best, tried):
    seen = []

    def rate_of(size):
        seen.append(size)
        return rates[size]

    assert climb(rate_of, (1, 2, 4, 8, 16), start) == best
    assert seen == tried


def test_climb_out_of_budget_keeps_the_best_so_far():
    answers = iter([5.0, 6.0, None])
    assert climb(lambda size: next(answers), (1, 2, 4, 8, 16), 2) == 4
    assert climb(lambda size: None, (1, 2, 4), 2) is None


# -- the cache ---------------------------------------------------------------------------------
@pytest.fixture
def machine_facts(monkeypatch):
    facts = {"cpu": "AMD EPYC 7B13", "cpus": 2, "libraries": {"torch": "2.13.0", "onnxruntime": "1.32.0"}}
    monkeypatch.setattr(cal, "cpu_model", lambda: facts["cpu"])
    monkeypatch.setattr(cal, "usable_cpus", lambda: facts["cpus"])
    monkeypatch.setattr(cal, "library_versions", lambda: dict(facts["libraries"]))
    return facts


def kept(plan: Plan) -> Calibration:
    return Calibration(plan, "measured", seconds=2.5, cpu_seconds=2.0,
                       measurements=[cal.Measurement("onnx", 1, 20, 16, 180.0, "cpu", 0.2)])


PLAN = Plan("onnx", (1, 2), ((20, 16), (160, 4), (256, 2)))


def test_a_kept_calibration_is_read_back_for_the_same_key(tmp_path, machine_facts):
    key = cal.cache_key("sentence-transformers/all-MiniLM-L6-v2", AUTO)
    path = cal.cache_file(tmp_path, key)
    assert path.parent == tmp_path / "calibration"
    assert path.name.startswith("sentence-transformers--all-MiniLM-L6-v2-")
    assert cal.read_cached(path, key) is None  # nothing kept yet
    cal.write_cached(path, key, kept(PLAN))
    again = cal.read_cached(path, cal.cache_key("sentence-transformers/all-MiniLM-L6-v2", AUTO))
    assert again.plan == PLAN and again.source == f"cache {path}"
    assert again.seconds == 2.5 and again.measurements[0].rate == 180.0
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


@pytest.mark.parametrize("change", [
    lambda facts: facts.update(cpu="Intel Xeon Platinum 8375C"),
    lambda facts: facts.update(cpus=8),
    lambda facts: facts["libraries"].update(onnxruntime="1.33.0"),
    lambda facts: facts["libraries"].update(torch="2.14.0"),
])
def test_another_machine_or_library_version_is_another_calibration(tmp_path, machine_facts, change):
    key = cal.cache_key("m", AUTO)
    cal.write_cached(cal.cache_file(tmp_path, key), key, kept(PLAN))
    change(machine_facts)
    other = cal.cache_key("m", AUTO)
    assert cal.cache_file(tmp_path, other) != cal.cache_file(tmp_path, key)
    assert cal.read_cached(cal.cache_file(tmp_path, other), other) is None
    # and a file holding another key is not taken for this one
    assert cal.read_cached(cal.cache_file(tmp_path, key), other) is None


def test_other_candidates_are_another_calibration(machine_facts):
    pinned_backend = Options.from_pins("onnx", 0, 0, cpus=2)
    assert cal.cache_key("m", pinned_backend) != cal.cache_key("m", AUTO)
    assert cal.cache_key("other-model", AUTO) != cal.cache_key("m", AUTO)


@pytest.mark.parametrize("text", ["", "{", "[]", '{"key": 1}', '{"key": null, "plan": {}}'])
def test_a_damaged_cache_file_is_measured_again(tmp_path, machine_facts, text):
    key = cal.cache_key("m", AUTO)
    path = cal.cache_file(tmp_path, key)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    assert cal.read_cached(path, key) is None


# -- configure: pinned, cached, refreshed, cut short ---------------------------------------------
def char_tokenizer(text, add_special_tokens=True, return_offsets_mapping=False, verbose=False, **_):
    """One token per character, [CLS]/[SEP] around."""
    ids = list(range(len(text)))
    out = {"input_ids": [0, *ids, 0] if add_special_tokens else ids}
    if return_offsets_mapping:
        out["offset_mapping"] = [(i, i + 1) for i in range(len(text))]
    return out


class FakeModel:
    tokenizer = staticmethod(char_tokenizer)
    max_seq_length = 64


class FakeEngines:
    """models.Engines without a model: counts loads and embedding calls."""

    class files:  # noqa: N801  (stands in for a ModelFiles instance)
        name = model = "fake/model"

    def __init__(self):
        self.loaded: list[tuple[str, int]] = []
        self.calls = 0
        self.kept = None

    def model(self, backend, threads):
        if (backend, threads) not in self.loaded:
            self.loaded.append((backend, threads))
        return FakeModel()

    def encoder(self, backend, threads):
        self.model(backend, threads)

        def encode(texts):
            self.calls += 1

        return encode

    def keep_only(self, backend, threads):
        self.kept = (backend, threads)


@pytest.mark.parametrize(("threads", "planned"), [(1, (1,)), (0, (1, 2))])
def test_a_pinned_configuration_measures_nothing_and_keeps_no_file(tmp_path, threads, planned):
    engines = FakeEngines()
    result = cal.configure(engines, Options.from_pins("torch", threads, 16, cpus=2), budget=10, cache_dir=tmp_path)
    assert result.source == "pinned"
    assert result.plan == Plan("torch", planned, ((20, 16), (64, 16)))
    assert engines.calls == 0
    assert not (tmp_path / "calibration").exists()


def test_budget_zero_means_no_calibration_and_the_defaults(tmp_path):
    engines = FakeEngines()
    result = cal.configure(engines, AUTO, budget=0, cache_dir=tmp_path)
    assert result.source == "defaults"
    assert result.plan == Plan("onnx", (0,), ((20, cal.DEFAULT_SUB_BATCH), (64, cal.DEFAULT_SUB_BATCH)))
    assert engines.calls == 0


def test_measured_once_then_read_from_the_cache_until_refreshed(tmp_path, monkeypatch):
    monkeypatch.setattr(cal, "MIN_CELL_SECONDS", {"cpu": 0.002, "wall": 0.002})
    first = FakeEngines()
    measured = cal.configure(first, AUTO, budget=60, cache_dir=tmp_path)
    assert measured.source == "measured" and measured.complete and first.calls > 0
    assert first.kept == (measured.plan.backend, (1, 2))
    [kept_file] = (tmp_path / "calibration").iterdir()

    second = FakeEngines()
    cached = cal.configure(second, AUTO, budget=60, cache_dir=tmp_path)
    assert cached.source == f"cache {kept_file}" and cached.plan == measured.plan
    assert second.calls == 0  # nothing measured
    assert second.loaded == [(measured.plan.backend, 1)]  # only the chosen engine

    third = FakeEngines()
    refreshed = cal.configure(third, AUTO, budget=60, cache_dir=tmp_path, refresh=True)
    assert refreshed.source == "measured" and third.calls > 0
    assert list((tmp_path / "calibration").iterdir()) == [kept_file]  # the same key, rewritten


def test_a_calibration_cut_short_is_used_but_not_kept(tmp_path, caplog):
    engines = FakeEngines()
    result = cal.configure(engines, AUTO, budget=0.01, cache_dir=tmp_path)
    assert not result.complete and result.source == "measured"
    assert result.plan.backend == "onnx"
    assert not (tmp_path / "calibration").exists()
    assert "autoembed calibrate" in caplog.text


# -- the thread switch ---------------------------------------------------------------------------
class Load:
    """A simulated machine: seconds per token on 1 and 2 threads, changed by the test; a fake clock."""

    def __init__(self, one: float, two: float):
        self.cost = {1: one, 2: two}
        self.now = 0.0

    def run(self, switch: ThreadSwitch, bucket: int = 0, tokens: int = 1000) -> int:
        threads = switch.pick(bucket)
        seconds = self.cost[threads] * tokens
        self.now += seconds
        switch.record(bucket, threads, tokens, seconds)
        return threads


def switch_on(load: Load) -> ThreadSwitch:
    return ThreadSwitch((1, 2), explore_after=10.0, explore_max=80.0, clock=lambda: load.now)


def test_the_switch_tries_both_then_runs_the_faster():
    load = Load(one=1e-3, two=0.6e-3)  # a core to spare: two threads 1.6x faster
    switch = switch_on(load)
    used = [load.run(switch) for _ in range(20)]  # 12 s of work
    assert used[:4] == [1, 1, 2, 2]  # each count's first sub-batch only warms it up
    assert used[4:].count(1) == 1  # tried again once its figure was 10 s old, confirmed slower
    assert switch.current(0) == 2


def test_the_switch_follows_the_load_both_ways():
    load = Load(one=1e-3, two=0.6e-3)
    switch = switch_on(load)
    for _ in range(20):
        load.run(switch)
    load.cost = {1: 3e-3, 2: 8e-3}  # other work takes the cores: two threads now far slower
    used = [load.run(switch) for _ in range(60)]
    assert switch.current(0) == 1
    # one thread is tried again at once (two threads now run slower than its last figure), and kept
    assert used.index(1) == 1
    assert used[-20:].count(2) <= 1  # the slow count is only tried now and then
    load.cost = {1: 1e-3, 2: 0.6e-3}  # the cores free again
    used = [load.run(switch) for _ in range(200)]
    assert switch.current(0) == 2 and used[-20:].count(1) <= 1


def test_trying_the_slower_count_costs_little_and_less_over_time():
    load = Load(one=1e-3, two=3e-3)  # a loaded machine: one thread much faster
    switch = switch_on(load)
    used = [load.run(switch) for _ in range(2000)]  # 2000 s of work
    tries = [i for i, threads in enumerate(used) if threads == 2]
    extra = sum(load.cost[2] - load.cost[1] for _ in tries) * 1000
    assert extra / load.now < 0.05
    gaps = [b - a for a, b in zip(tries, tries[1:])]
    assert gaps == sorted(gaps)  # tries grow rarer, up to explore_max
    assert max(gaps) <= 80 / (1000 * 1e-3) + 1


def test_buckets_are_switched_apart():
    load = Load(one=1e-3, two=0.6e-3)
    switch = switch_on(load)
    for _ in range(10):
        load.run(switch, bucket=0)
    assert switch.current(0) == 2 and switch.current(1) == 1  # bucket 1 has not run yet


def test_one_thread_count_is_never_switched():
    switch = ThreadSwitch((1,))
    for _ in range(5):
        assert switch.pick(0) == 1
        switch.record(0, 1, 100, 0.1)
