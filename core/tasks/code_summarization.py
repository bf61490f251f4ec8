"""code_summarization: an instruction to explain or document a function, and a clear summary."""
from core.tasks.base import InstructionExample, TaskSpec
from core.tasks.prefilter import SNIPPET_INFORMATION_CHECKS

TASK = TaskSpec(
    name="code_summarization",
    title="Code summarization",
    schema=InstructionExample,
    checks=SNIPPET_INFORMATION_CHECKS,
    solution_is_code=False,   # the solution is a summary in prose
    definition=(
        "Code summarization: given a piece of real code, write an instruction asking to explain or "
        "document that code, put the code itself in information, and write as the solution a clear, "
        "concise natural-language summary of what the code does, its inputs, its output and any "
        "notable behaviour."),
    requirements=[
        "The output has exactly the keys task_name, instruction, information and solution.",
        "The instruction is one or two sentences, asks to summarize, explain or document the code, and names the programming language.",
        "information contains the input code, unchanged.",
        "The solution is a correct summary of what the code does: purpose, inputs, output, side effects.",
        "The solution is concise (at most about five sentences) and does not restate the code line by line.",
        "The solution does not invent behaviour the code does not have.",
    ],
    rules=[
        "The instruction asks for a summary, explanation or documentation of the code and names the language.",
        "information contains the code to be summarized.",
        "The summary is faithful: every claim in it is supported by the code.",
        "The summary covers the purpose, the inputs and the output of the code.",
        "The summary is concise and readable rather than a line-by-line paraphrase.",
        "The input code is real code, not only comments.",
    ],
    good_examples=[{
        "task_name": "Explain a clamp function",
        "instruction": "Explain what the following Python function does.",
        "information": "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n",
        "solution": ("`clamp` limits the number `x` to the closed range from `lo` to `hi`: it returns `lo` "
                     "when `x` is smaller, `hi` when `x` is larger, and `x` itself otherwise."),
    }],
    bad_examples=[{
        "fields": {
            "task_name": "Summary",
            "instruction": "Summarize.",
            "information": "no input",
            "solution": "This function is very important and handles all the edge cases of the program efficiently.",
        },
        "analysis": ("The code to summarize is missing from information, the instruction names no language, and "
                     "the summary is generic praise that says nothing about what the code does."),
    }],
)
