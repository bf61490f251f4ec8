"""oss_instruct (Magicoder): a self-contained problem inspired by a 1-15 line seed, and its solution."""
from core.tasks.base import PROSE_FIELDS, OssInstructExample, TaskSpec
from core.tasks.prefilter import SOLUTION_CHECKS


class OssInstruct(TaskSpec):
    def display_language(self, name: str, value: object, source_language: str | None,
                         target_language: str | None) -> str | None:
        """Problem and solution are markdown (the solution's code sits in a fenced block); tests are code."""
        if name == self.tests_key:
            return self.solution_language(source_language, target_language)
        return None if name in PROSE_FIELDS else "markdown"


TASK = OssInstruct(
    name="oss_instruct",
    title="OSS-Instruct",
    schema=OssInstructExample,
    input_kind="seed",
    checks=SOLUTION_CHECKS,        # a problem may take as many sentences as it needs
    instruction_key="problem",
    input_key=None,                # the problem is self-contained
    definition=(
        "OSS-Instruct: the input is a short fragment of real open-source code (the seed). Draw "
        "inspiration from it to write a high-quality programming problem and its solution. The "
        "problem need not reproduce the seed; it should be a realistic task that the seed suggests."),
    requirements=[
        "The output has exactly the keys problem, solution and tests.",
        "The problem is completely self-contained: it gives all the context, inputs, outputs and constraints needed to solve it, and does not refer to the seed.",
        "The problem is inspired by the seed code (its domain, API or algorithm).",
        "The solution is complete and correct and solves exactly the stated problem.",
        "The solution is code in a fenced block, optionally followed by a short explanation.",
        "tests is plain code in the solution's language that checks the solution on typical and edge cases and fails if it is wrong.",
    ],
    rules=[
        "The problem is self-contained: it can be solved without seeing the seed code.",
        "The problem is clearly related to the seed code.",
        "The problem states its inputs, outputs and constraints precisely.",
        "The solution solves the stated problem completely and correctly.",
        "The solution imports or defines everything it uses.",
        "The problem is not a trivial restatement or copy of a well-known benchmark problem.",
    ],
    good_examples=[{
        "problem": ("Write a Python function `parse_duration(text)` that converts strings such as \"1h30m\", "
                    "\"45s\" or \"2h5s\" into a number of seconds. Units are h, m and s, each at most once and "
                    "in that order; raise ValueError for anything else."),
        "solution": ("```python\nimport re\n\n_PATTERN = re.compile(r\"^(?:(\\d+)h)?(?:(\\d+)m)?(?:(\\d+)s)?$\")\n\n"
                     "def parse_duration(text):\n    m = _PATTERN.match(text)\n    if not text or not m:\n"
                     "        raise ValueError(f\"bad duration: {text!r}\")\n"
                     "    h, mi, s = (int(g) if g else 0 for g in m.groups())\n"
                     "    return h * 3600 + mi * 60 + s\n```"),
        "tests": ("assert parse_duration(\"1h30m\") == 5400\nassert parse_duration(\"45s\") == 45\n"
                  "assert parse_duration(\"2h5s\") == 7205\ntry:\n    parse_duration(\"5m1h\")\n"
                  "    raise AssertionError(\"expected ValueError\")\nexcept ValueError:\n    pass\n"),
    }],
    bad_examples=[{
        "fields": {
            "problem": "Fix the function above so that it works with the new config.",
            "solution": "Change the config loader.",
        },
        "analysis": ("The problem refers to code and a config the reader cannot see, so it is not "
                     "self-contained, and the solution contains no code."),
    }],
)
