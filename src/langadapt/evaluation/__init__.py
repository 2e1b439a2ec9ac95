"""Evaluation: task registry (``TASKS``, in :mod:`.tasks` with the one-job entry point ``evaluate``), the
task kinds, their datasets (:mod:`.datasets`) and metrics.

Importing this package registers the built-in task kinds:

* ``retrieval_bible`` (:mod:`.retrieval`): SR-B sentence retrieval on the Bible, top-k accuracy;
* ``retrieval_tatoeba`` (:mod:`.sequence_tasks`): SR-T sentence retrieval on Tatoeba;
* ``bible_genre`` (:mod:`.classification`): Bible book-genre classification, a Taxi1500 stand-in;
* ``classification`` (:mod:`.sequence_tasks`): SIB-200 / Taxi1500 topic classification;
* ``nli`` (:mod:`.sequence_tasks`): XNLI;
* ``token_classification`` (:mod:`.token_classification`): WikiANN NER, UD POS (zero-shot or in-language);
* ``mlm_loss`` (:mod:`.mlm_loss`): held-out masked-LM loss per language, fixed seeded masks;
* ``fertility`` (:mod:`.fertility`): pieces per word and UNK rate of the model's tokenizer per language.

The fine-tuning tasks share one loop (:mod:`.finetune`); zero-shot source languages, LangSAMP donors
included, are planned in :mod:`.donor`; word-level heads are in :mod:`.words`.
"""

from langadapt.evaluation import (  # noqa: F401  (registers task kinds)
    classification,
    fertility,
    mlm_loss,
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
