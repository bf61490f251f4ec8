"""code_repair: a buggy variant of the function, an instruction to fix it, the fix and what was wrong."""
from core.tasks.base import TaskSpec, TestedInstructionExample
from core.tasks.prefilter import SNIPPET_INFORMATION_CHECKS

TASK = TaskSpec(
    name="code_repair",
    title="Code repair",
    schema=TestedInstructionExample,
    checks=SNIPPET_INFORMATION_CHECKS,   # information is the snippet with a bug planted
    definition=(
        "Code repair: given a piece of real code, introduce one realistic bug into it and put the "
        "buggy code in information; write an instruction asking to find and fix the bug; write as the "
        "solution the corrected code (in a fenced block) followed by a short explanation of what was wrong, "
        "and tests that pass for the corrected code and fail for the buggy one."),
    requirements=[
        "The output has exactly the keys task_name, instruction, information, solution and tests.",
        "information contains the buggy code: the input code with one realistic bug (wrong operator, off-by-one, missing case, wrong variable...).",
        "The instruction is one or two sentences, asks to fix the code and names the programming language.",
        "The solution contains the corrected code in a fenced code block; it fixes the bug without other changes.",
        "After the code, the solution explains in one or two sentences what was wrong.",
        "The bug is not announced by a comment inside the buggy code.",
        "tests is plain code in the solution's language that passes for the corrected code and fails for the buggy code.",
    ],
    rules=[
        "The instruction asks to fix the code and names the programming language.",
        "information contains code with a real bug (it behaves differently from the input code).",
        "The bug is not pointed out by a comment in the buggy code.",
        "The solution's code fixes the bug and is otherwise the same as the buggy code.",
        "The solution explains what was wrong, and the explanation matches the fix.",
        "The input code is real code, not only comments.",
    ],
    good_examples=[{
        "task_name": "Fix an off-by-one in a range sum",
        "instruction": "The following Python function should sum the integers from 1 to n inclusive; fix it.",
        "information": "def sum_to(n):\n    total = 0\n    for i in range(1, n):\n        total += i\n    return total\n",
        "solution": ("```python\ndef sum_to(n):\n    total = 0\n    for i in range(1, n + 1):\n        total += i\n"
                     "    return total\n```\n\n"
                     "The loop stopped at n - 1 because range excludes its end; it must run to n + 1."),
        "tests": "assert sum_to(1) == 1\nassert sum_to(4) == 10\nassert sum_to(0) == 0\n",
    }],
    bad_examples=[{
        "fields": {
            "task_name": "Fix",
            "instruction": "Fix the bug.",
            "information": "def sum_to(n):\n    # BUG: should be n + 1\n    return sum(range(1, n))\n",
            "solution": "Use n + 1.",
        },
        "analysis": ("The bug is announced by a comment, the instruction names no language, and the solution "
                     "gives no corrected code."),
    }],
)
