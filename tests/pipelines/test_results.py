import math

import pytest

from graphkit.pipelines.results import (RunResult, append_record,
                                        markdown_table, read_records,
                                        summarize, write_text_atomic)


def _rec(run, test):
    return RunResult(run=run, seed=run, split='s', best_epoch=1, valid=0.5,
                     test=test, train=None, epochs=2, time_s=1.0,
                     epoch_time_s=0.5)


def test_atomic_write_is_never_seen_half_written(tmp_path):
    # one thread rewrites a file that another keeps parsing, as ranks do
    # with config.json on resume: every read is a whole document
    import json
    import threading
    path = tmp_path / 'config.json'
    docs = [json.dumps({'v': i, 'pad': 'x' * 200_000}) for i in range(2)]
    write_text_atomic(path, docs[0])
    seen, errors, done = set(), [], threading.Event()

    def read():
        while not done.is_set():
            try:
                seen.add(json.loads(path.read_text())['v'])
            except ValueError as e:
                errors.append(e)

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(200):
        write_text_atomic(path, docs[i % 2])
    done.set()
    reader.join()
    assert not errors
    assert seen <= {0, 1}
    assert [p.name for p in tmp_path.iterdir()] == ['config.json']


def test_summary_and_round_trip(tmp_path):
    recs = [_rec(0, 0.8), _rec(1, 0.9), _rec(2, 1.0)]
    for r in recs:
        append_record(tmp_path / 'r.jsonl', r)
    back = read_records(tmp_path / 'r.jsonl')
    assert back == recs
    s = summarize(back, 'gcn', 'cora', 'accuracy')
    assert s.test_mean == pytest.approx(0.9)
    assert s.test_std == pytest.approx(0.1)
    assert s.test_ci95 == pytest.approx(1.96 * 0.1 / math.sqrt(3))
    table = markdown_table([s])
    assert '| gcn | cora | accuracy | 3 | 90.00 ± 10.00 |' in table


def test_extra_scores_are_summarised():
    from graphkit.pipelines.results import RunResult, extra_table, summarize
    recs = [RunResult(run=i, seed=i, split='s', best_epoch=1, valid=0.5,
                      test=0.5, train=None, epochs=2, time_s=1.0,
                      epoch_time_s=0.5,
                      extra={'test_ndcg@10': 0.2 + 0.1 * i,
                             'valid_ndcg@10': 0.1})
            for i in range(2)]
    s = summarize(recs, 'm', 'd', 'ndcg@10')
    mean, std = s.extra['test_ndcg@10']
    assert abs(mean - 0.25) < 1e-9 and abs(std - 0.0707107) < 1e-6
    table = extra_table([s])
    assert 'ndcg@10' in table and '0.2500' in table
    assert 'valid_ndcg' not in table
