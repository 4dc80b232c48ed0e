"""The suite's result files, in clip_benchmark's formats.

- one JSON per dataset as ``clip_benchmark eval`` writes it: keys
  ``dataset, model, pretrained, task, metrics, language``, named by its
  default ``--output`` template
  ``{dataset}_{pretrained}_{model}_{language}_{task}.json``;
- one CSV of them all with the columns ``clip_benchmark build`` writes
  (the metrics, the JSON's other keys and ``model_fullname``), in a fixed
  order;
- a markdown table for the console (metrics in %).
"""
import csv
import json
import math
import os.path as osp
from typing import Dict, List, Sequence

from .catalog import CLASSIFICATION, RETRIEVAL

#: clip_benchmark's JSON keys besides ``metrics``, in its order.
INFO_KEYS = ('dataset', 'model', 'pretrained', 'task', 'language')


def result_record(dataset: str, model: str, pretrained: str,
                  metrics: Dict[str, float],
                  task: str = CLASSIFICATION,
                  language: str = 'en') -> dict:
    """One dataset's result as clip_benchmark's JSON holds it."""
    return dict(dataset=dataset, model=model, pretrained=pretrained,
                task=task, metrics=dict(metrics), language=language)


def json_path(out_dir: str, record: dict) -> str:
    """Where clip_benchmark's default ``--output`` puts ``record`` (a
    ``/`` of a name such as ``vtab/dtd`` written as ``_``)."""
    name = '{dataset}_{pretrained}_{model}_{language}_{task}.json'.format(
        **{k: str(record[k]).replace('/', '_') for k in INFO_KEYS})
    return osp.join(out_dir, name)


def write_json(out_dir: str, record: dict) -> str:
    """Write ``record`` (NaN as clip_benchmark's ``json.dump`` writes it).

    Returns:
        str: The file written.
    """
    path = json_path(out_dir, record)
    with open(path, 'w') as f:
        json.dump(record, f)
    return path


def csv_rows(records: Sequence[dict]) -> List[dict]:
    """The rows ``clip_benchmark build`` makes of JSON records."""
    rows = []
    for record in records:
        row = dict(record['metrics'])
        row.update({k: record[k] for k in INFO_KEYS})
        row['model_fullname'] = f'{record["model"]} {record["pretrained"]}'
        rows.append(row)
    return rows


def write_csv(path: str, records: Sequence[dict]) -> None:
    """One CSV row per record; columns: :data:`INFO_KEYS`,
    ``model_fullname``, then every metric (in first-seen order)."""
    rows = csv_rows(records)
    columns = list(INFO_KEYS) + ['model_fullname']
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _percent(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return f'{100 * value:.2f}'


#: The metrics the console table shows per task.
TABLE_METRICS = {
    CLASSIFICATION: ('acc1', 'acc5', 'mean_per_class_recall'),
    RETRIEVAL:
    ('image_retrieval_recall@1', 'image_retrieval_recall@5',
     'text_retrieval_recall@1', 'text_retrieval_recall@5'),
}


def markdown_table(records: Sequence[dict], counts: Dict[str, dict]) -> str:
    """The results as markdown, one table per task, metrics in %.

    Args:
        records (Sequence[dict]): As :func:`result_record` makes them.
        counts (dict): Per dataset name, ``samples`` (scored) and
            ``skipped`` (unreadable) counts.

    Returns:
        str: The tables, one line per dataset.
    """
    tables = []
    for task, names in TABLE_METRICS.items():
        rows = [r for r in records if r['task'] == task]
        if not rows:
            continue
        lines = [
            '| dataset | ' + ' | '.join(names) + ' | samples | skipped |',
            '|---' * (len(names) + 3) + '|'
        ]
        for record in rows:
            count = counts[record['dataset']]
            values = [_percent(record['metrics'].get(n)) for n in names]
            lines.append(f'| {record["dataset"]} | ' + ' | '.join(values) +
                         f' | {count["samples"]} | {count["skipped"]} |')
        tables.append('\n'.join(lines))
    return '\n\n'.join(tables)
