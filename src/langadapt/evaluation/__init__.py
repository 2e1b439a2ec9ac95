"""Evaluation: task registry (``TASKS``), one-job entry point (``evaluate``), tasks and metrics.

Importing this package registers the built-in task kinds:

* ``retrieval_bible`` (:mod:`.retrieval`): SR-B style sentence retrieval, top-k accuracy;
* ``bible_genre`` (:mod:`.classification`): Bible book-genre classification, a Taxi1500 stand-in.
"""

from langadapt.evaluation import (  # noqa: F401  (registers task kinds)
    classification,
    retrieval,
    sequence_tasks,
    token_classification,
)
from langadapt.evaluation.metrics import accuracy, macro_f1, topk_accuracy
from langadapt.evaluation.tasks import ROW_COLUMNS, TASKS, Task, TaskData, build_task, evaluate

__all__ = [
    "ROW_COLUMNS",
    "TASKS",
    "Task",
    "TaskData",
    "accuracy",
    "build_task",
    "evaluate",
    "macro_f1",
    "topk_accuracy",
]
