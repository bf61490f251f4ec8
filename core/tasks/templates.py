"""The default prompt text every task starts from (Jinja2, rendered sandboxed by core.tasks.prompts).

A task's copy of these lives in its editable content (`prompt_versions`), so an edit on the
Generate page changes the prompt without touching code.
"""
from __future__ import annotations

GENERATOR_SYSTEM = ("You write training data for code language models. "
                    "Reply with exactly one JSON object and nothing else.")

JUDGE_SYSTEM = ("You are a strict reviewer of training data for code language models. "
                "Reply with exactly one JSON object and nothing else.")

GENERATOR_TEMPLATE = """\
Task: {{ task }}{% if target_language %} (target language: {{ target_language }}){% endif %}

## Task definition
{{ definition }}

## Requirements
{% for r in requirements %}{{ loop.index }}. {{ r }}
{% endfor %}
## Good examples
{% for ex in good_examples %}Good example {{ loop.index }}:
{{ ex.block }}
{% else %}(none yet)
{% endfor %}
## Bad examples (do not generate data like this)
{% for ex in bad_examples %}Bad example {{ loop.index }}:
{{ ex.block }}
Analysis: {{ ex.analysis }}
{% else %}(none yet)
{% endfor %}
## Input code ({{ language }})
{{ code_block }}
{% if target_language %}
Target language: {{ target_language }}
{% endif %}{% if "tests" in keys %}
## Tests
The tests field holds plain code (no prose, no fences) in the solution's language that is run right \
after the solution's code and must fail if the solution is wrong: Python `assert` statements; \
JavaScript/TypeScript `assert.strictEqual(...)` / `assert.deepStrictEqual(...)` (`assert` is \
predefined); Java a class with `public static void main` that throws `AssertionError` on a wrong \
result; C++ an `int main()` using `assert`; Rust a `fn main()` using `assert_eq!`. Test typical \
and edge cases, use only the solution and the standard library, and do not print or read input.
{% endif %}
Write one new example from the input code above. Reply with one JSON object with exactly \
these keys: {{ keys | join(", ") }}.
"""

JUDGE_TEMPLATE = """\
Task: {{ task }}{% if target_language %} (target language: {{ target_language }}){% endif %}

## Task definition
{{ definition }}

## Input code ({{ language }})
{{ code_block }}

## Example to judge
{{ example_block }}
{% if execution %}
## Execution
{{ execution }}
{% endif %}
## Rules
{% for r in rules %}{{ loop.index }}. {{ r }}
{% endfor %}
Check the example against every rule, one at a time and in order. For each rule first write \
a short reason, then answer "yes" if the rule holds or "no" if it does not. Then write a one or \
two sentence analysis of what is wrong with the example (or why it is good), and an overall \
answer that is "yes" only if every rule was answered "yes".
Reply with one JSON object with one key per rule, in this order: \
{{ rule_keys | join(", ") }}; each holds {"reason": "...", "answer": "yes" or "no"} for that rule. \
Then "analysis": "..." and "overall": "yes" or "no".
"""

# The one repair round a failing example gets: sent after the generator's own reply.
REPAIR_TEMPLATE = """\
Your example was run in a sandbox (the solution's code followed by its tests) and failed.

{{ failure }}

Fix the solution (and the tests only where the tests themselves are wrong) so that the tests pass. \
Reply with the whole example again as one JSON object with exactly these keys: {{ keys | join(", ") }}.
"""
