"""code_generation: from a function, an instruction a user could give and the code that answers it."""
from core.tasks.base import TaskSpec, TestedInstructionExample

TASK = TaskSpec(
    name="code_generation",
    title="Code generation",
    schema=TestedInstructionExample,
    definition=(
        "Code generation: given a piece of real code, write an instruction that a programmer could "
        "give to an assistant, any extra input the instruction needs, and a solution in code that "
        "carries out the instruction. The example must be inspired by the input code: it asks for "
        "the functionality the code implements, in the same programming language."),
    requirements=[
        "The output has exactly the keys task_name, instruction, information, solution and tests.",
        "The solution resolves the instruction together with the information, and is specific to them.",
        "The instruction is one or two sentences and names the programming language.",
        "The solution imports every library it uses.",
        "The algorithmic logic is readable, not hidden inside convoluted helper functions.",
        "information holds extra input the instruction needs, or exactly \"no input\" when there is none.",
        "tests is plain code in the solution's language that checks the solution on typical and edge cases and fails if it is wrong.",
    ],
    rules=[
        "The instruction names the programming language.",
        "The solution is the specific resolution of the instruction and the information.",
        "The solution is only code (comments inside the code are fine), with no prose outside it.",
        "The solution's logic is not buried in complex or poorly documented functions.",
        "The solution imports what it needs.",
        "The input code is real code, not only comments.",
        "The instruction is relevant to the input code and summarizes it without unrelated content.",
    ],
    good_examples=[{
        "task_name": "Count word frequencies",
        "instruction": "Write a Python function that returns the n most common words in a text, ignoring case.",
        "information": "no input",
        "solution": ("from collections import Counter\nimport re\n\n"
                     "def most_common_words(text, n):\n"
                     "    words = re.findall(r\"[a-z']+\", text.lower())\n"
                     "    return Counter(words).most_common(n)\n"),
        "tests": ("assert most_common_words(\"b a B c b a\", 2) == [(\"b\", 3), (\"a\", 2)]\n"
                  "assert most_common_words(\"\", 3) == []\n"),
    }],
    bad_examples=[{
        "fields": {
            "task_name": "Helper",
            "instruction": "Write a function. It should be useful. Make it fast and also explain it.",
            "information": "none",
            "solution": "Here is the code:\ndef f(x):\n    return helper(x)\nThis works because helper does the work.",
        },
        "analysis": ("The instruction has three sentences, does not name the language and says nothing "
                     "specific; the solution mixes prose with code and hides its logic in an undefined helper."),
    }],
)
