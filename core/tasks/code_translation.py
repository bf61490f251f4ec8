"""code_translation: the same behaviour written in a target language (a job parameter)."""
from core.tasks.base import InstructionExample, TaskSpec
from core.tasks.prefilter import SNIPPET_INFORMATION_CHECKS


class CodeTranslation(TaskSpec):
    def solution_language(self, source_language: str | None, target_language: str | None) -> str | None:
        """The solution is written in the target language (the source one when none was given)."""
        return target_language or source_language


TASK = CodeTranslation(
    name="code_translation",
    title="Code translation",
    schema=InstructionExample,
    needs_target_language=True,
    checks=SNIPPET_INFORMATION_CHECKS,   # information is the source code to translate
    definition=(
        "Code translation: given a piece of real code and a target programming language, write an "
        "instruction asking to translate the code into the target language, put the source code in "
        "information, and write as the solution the same behaviour implemented idiomatically in the "
        "target language."),
    requirements=[
        "The output has exactly the keys task_name, instruction, information and solution.",
        "The instruction is one or two sentences and names both the source and the target language.",
        "information contains the source code to translate.",
        "The solution is written in the target language and behaves the same as the source code.",
        "The solution is idiomatic in the target language and imports or includes what it uses.",
        "The solution is only code (comments inside the code are fine).",
    ],
    rules=[
        "The instruction names the source language and the target language.",
        "information contains the source code.",
        "The solution is written in the target language.",
        "The solution has the same behaviour as the source code (same inputs, outputs and edge cases).",
        "The solution is only code, with no prose outside it.",
        "The solution imports or includes everything it uses.",
    ],
    good_examples=[{
        "task_name": "Translate clamp to Go",
        "instruction": "Translate this Python function into Go.",
        "information": "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n",
        "solution": ("func clamp(x, lo, hi float64) float64 {\n\tif x < lo {\n\t\treturn lo\n\t}\n"
                     "\tif x > hi {\n\t\treturn hi\n\t}\n\treturn x\n}\n"),
    }],
    bad_examples=[{
        "fields": {
            "task_name": "Translation",
            "instruction": "Translate the code.",
            "information": "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n",
            "solution": "def clamp(x, lo, hi):\n    return min(lo, max(x, hi))\n",
        },
        "analysis": ("The instruction names no languages, the solution is still Python instead of the target "
                     "language, and it swaps min and max so the behaviour differs."),
    }],
)
