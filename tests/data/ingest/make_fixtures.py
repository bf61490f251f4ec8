"""Regenerates the committed ingestion fixtures (run from anywhere: python make_fixtures.py).

* codesearchnet/original/<lang>_train_0.jsonl[.gz]: original/CodeXGLUE schema, one shard per language
* codesearchnet/hf_code_search_net.jsonl: Hugging Face `code_search_net` schema, six languages
* wholefile/stack_sample.jsonl: The Stack style records built from multilang_repo/ plus a Shell file

The functions are real ones from well-known repositories, written out as CodeSearchNet stores them
(the first line's indentation stripped, the url carrying the line span).
"""
import gzip
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "codesearchnet"

def tokens(s):
    return re.findall(r"\w+|[^\w\s]", s)

# (language, repo, path, func_name, docstring, code as in the file with the first line's indentation stripped, start line)
FUNCS = [
 ("python", "psf/requests", "requests/utils.py", "unquote_header_value",
  "Unquotes a header value.  (Reversal of :func:`quote_header_value`).",
  'def unquote_header_value(value, is_filename=False):\n    r"""Unquotes a header value.  (Reversal of :func:`quote_header_value`).\n    """\n    if value and value[0] == value[-1] == \'"\':\n        value = value[1:-1]\n        if not is_filename or value[:2] != "\\\\\\\\":\n            return value.replace("\\\\\\\\", "\\\\").replace(\'\\\\"\', \'"\')\n    return value', 431),
 ("python", "pallets/flask", "src/flask/helpers.py", "Config.get_namespace",
  "Returns a dictionary containing a subset of configuration options\nthat match the specified namespace/prefix.",
  'def get_namespace(self, namespace, lowercase=True, trim_namespace=True):\n        """Returns a dictionary containing a subset of configuration options\n        that match the specified namespace/prefix.\n        """\n        rv = {}\n        for k, v in self.items():\n            if not k.startswith(namespace):\n                continue\n            key = k[len(namespace):] if trim_namespace else k\n            rv[key.lower() if lowercase else key] = v\n        return rv', 288),
 ("java", "google/guava", "guava/src/com/google/common/math/IntMath.java", "IntMath.gcd",
  "Returns the greatest common divisor of {@code a, b}. Returns {@code 0} if {@code a == 0 && b == 0}.",
  'public static int gcd(int a, int b) {\n    checkNonNegative("a", a);\n    checkNonNegative("b", b);\n    while (b != 0) {\n      int t = b;\n      b = a % b;\n      a = t;\n    }\n    return a;\n  }', 402),
 ("java", "apache/commons-lang", "src/main/java/org/apache/commons/lang3/StringUtils.java", "StringUtils.isBlank",
  "Checks if a CharSequence is empty (\"\"), null or whitespace only.",
  'public static boolean isBlank(final CharSequence cs) {\n        final int strLen = length(cs);\n        if (strLen == 0) {\n            return true;\n        }\n        for (int i = 0; i < strLen; i++) {\n            if (!Character.isWhitespace(cs.charAt(i))) {\n                return false;\n            }\n        }\n        return true;\n    }', 3610),
 ("javascript", "lodash/lodash", "chunk.js", "chunk",
  "Creates an array of elements split into groups the length of `size`.",
  'function chunk(array, size = 1) {\n  size = Math.max(toInteger(size), 0)\n  const length = array == null ? 0 : array.length\n  if (!length || size < 1) {\n    return []\n  }\n  let index = 0\n  let resIndex = 0\n  const result = new Array(Math.ceil(length / size))\n  while (index < length) {\n    result[resIndex++] = slice(array, index, (index += size))\n  }\n  return result\n}', 21),
 ("javascript", "expressjs/express", "lib/utils.js", "parseExtendedQueryString",
  "Parse an extended query string with qs.",
  'function parseExtendedQueryString(str) {\n  return qs.parse(str, {\n    allowPrototypes: true\n  });\n}', 280),
 ("go", "golang/example", "stringutil/reverse.go", "Reverse",
  "Reverse returns its argument string reversed rune-wise left to right.",
  'func Reverse(s string) string {\n\tr := []rune(s)\n\tfor i, j := 0, len(r)-1; i < len(r)/2; i, j = i+1, j-1 {\n\t\tr[i], r[j] = r[j], r[i]\n\t}\n\treturn string(r)\n}', 20),
 ("go", "spf13/cobra", "command.go", "Command.HasParent",
  "HasParent determines if the command is a child command.",
  'func (c *Command) HasParent() bool {\n\treturn c.parent != nil\n}', 1480),
 ("php", "laravel/framework", "src/Illuminate/Support/Str.php", "Str.startsWith",
  "Determine if a given string starts with a given substring.",
  'public static function startsWith($haystack, $needles)\n    {\n        foreach ((array) $needles as $needle) {\n            if ((string) $needle !== \'\' && str_starts_with($haystack, $needle)) {\n                return true;\n            }\n        }\n\n        return false;\n    }', 690),
 ("php", "symfony/polyfill", "src/Php80/Php80.php", "Php80.str_contains",
  "Checks if $needle is contained in $haystack.",
  'public static function str_contains(string $haystack, string $needle): bool\n    {\n        return \'\' === $needle || false !== strpos($haystack, $needle);\n    }', 80),
 ("ruby", "rails/rails", "activesupport/lib/active_support/core_ext/array/grouping.rb", "Array.in_groups_of",
  "Splits or iterates over the array in groups of size +number+, padding any remaining slots with +fill_with+ unless it is +false+.",
  'def in_groups_of(number, fill_with = nil, &block)\n    if number.to_i <= 0\n      raise ArgumentError,\n        "Group size must be a positive integer, was #{number.inspect}"\n    end\n\n    if fill_with == false\n      collection = self\n    else\n      padding = (number - size % number) % number\n      collection = dup.concat(Array.new(padding, fill_with))\n    end\n\n    if block_given?\n      collection.each_slice(number, &block)\n    else\n      collection.each_slice(number).to_a\n    end\n  end', 22),
 ("ruby", "jekyll/jekyll", "lib/jekyll/utils.rb", "Jekyll.Utils.titleize_slug",
  "Takes a slug and turns it into a simple title.",
  'def titleize_slug(slug)\n      slug.split("-").map!(&:capitalize).join(" ")\n    end', 47),
 ("python", "python/cpython", "Lib/textwrap.py", "indent",
  "Adds 'prefix' to the beginning of selected lines in 'text'.",
  'def indent(text, prefix, predicate=None):\n    """Adds \'prefix\' to the beginning of selected lines in \'text\'.\n    """\n    if predicate is None:\n        def predicate(line):\n            return line.strip()\n\n    def prefixed_lines():\n        for line in text.splitlines(True):\n            yield (prefix + line if predicate(line) else line)\n    return \'\'.join(prefixed_lines())', 465),
 ("java", "square/okhttp", "okhttp/src/main/java/okhttp3/internal/Util.java", "Util.closeQuietly",
  "Closes {@code closeable}, ignoring any checked exceptions. Does nothing if {@code closeable} is null.",
  'public static void closeQuietly(Closeable closeable) {\n    if (closeable != null) {\n      try {\n        closeable.close();\n      } catch (RuntimeException rethrown) {\n        throw rethrown;\n      } catch (Exception ignored) {\n      }\n    }\n  }', 137),
 ("javascript", "sindresorhus/escape-string-regexp", "index.js", "escapeStringRegexp",
  "Escape RegExp special characters.",
  "function escapeStringRegexp(string) {\n\tif (typeof string !== 'string') {\n\t\tthrow new TypeError('Expected a string');\n\t}\n\n\treturn string\n\t\t.replace(/[|\\\\{}()[\\]^$+*?.]/g, '\\\\$&')\n\t\t.replace(/-/g, '\\\\x2d');\n}", 1),
 ("go", "gin-gonic/gin", "utils.go", "filterFlags",
  "filterFlags returns the content type without its parameters.",
  "func filterFlags(content string) string {\n\tfor i, char := range content {\n\t\tif char == ' ' || char == ';' {\n\t\t\treturn content[:i]\n\t\t}\n\t}\n\treturn content\n}", 85),
 ("php", "guzzle/psr7", "src/Utils.php", "Utils.caselessRemove",
  "Remove the items given by the keys, case insensitively from the data.",
  'public static function caselessRemove(array $keys, array $data): array\n    {\n        $result = [];\n\n        foreach ($keys as &$key) {\n            $key = strtolower($key);\n        }\n\n        foreach ($data as $k => $v) {\n            if (!is_string($k) || !in_array(strtolower($k), $keys)) {\n                $result[$k] = $v;\n            }\n        }\n\n        return $result;\n    }', 40),
 ("ruby", "sinatra/sinatra", "lib/sinatra/base.rb", "Sinatra.Helpers.redirect",
  "Halt processing and redirect to the URI provided.",
  "def redirect(uri, *args)\n      if (env['HTTP_VERSION'] == 'HTTP/1.1') && (env['REQUEST_METHOD'] != 'GET')\n        status 303\n      else\n        status 302\n      end\n\n      # According to RFC 2616 section 14.30, \"the field value consists of a\n      # single absolute URI\"\n      response['Location'] = uri(uri.to_s, settings.absolute_redirects?, settings.prefixed_redirects?)\n      halt(*args)\n    end", 288),
]

def line_span(code, start):
    return start, start + code.count("\n")

def original(rec_i, f, partition="train"):
    lang, repo, path, name, doc, code, start = f
    s, e = line_span(code, start)
    url = f"https://github.com/{repo}/blob/{'%040x' % (0xabc123 + rec_i)}/{path}#L{s}-L{e}"
    return {"repo": repo, "path": path, "func_name": name, "original_string": code, "language": lang,
            "code": code, "code_tokens": tokens(code), "docstring": doc, "docstring_tokens": tokens(doc),
            "sha": '%040x' % (0xabc123 + rec_i), "url": url, "partition": partition}

def hf(rec_i, f):
    lang, repo, path, name, doc, code, start = f
    s, e = line_span(code, start)
    sha = '%040x' % (0xdef456 + rec_i)
    return {"repository_name": repo, "func_path_in_repository": path, "func_name": name,
            "whole_func_string": code, "language": lang, "func_code_string": code,
            "func_code_tokens": tokens(code), "func_documentation_string": doc,
            "func_documentation_tokens": tokens(doc), "split_name": "train",
            "func_code_url": f"https://github.com/{repo}/blob/{sha}/{path}#L{s}-L{e}"}

(OUT / "original").mkdir(parents=True, exist_ok=True)
by_lang = {}
for i, f in enumerate(FUNCS):
    by_lang.setdefault(f[0], []).append((i, f))
# Original schema: one shard per language, as published (python_train_0.jsonl.gz, ...): 1st and 3rd functions.
for lang, items in by_lang.items():
    lines = "".join(json.dumps(original(i, f)) + "\n" for i, f in (items[0], items[2]))
    name = f"{lang}_train_0.jsonl"
    if lang in ("python", "java", "go"):
        with gzip.GzipFile(OUT / "original" / (name + ".gz"), "wb", mtime=0) as fh:  # byte-reproducible
            fh.write(lines.encode("utf-8"))
    else:
        (OUT / "original" / name).write_text(lines, encoding="utf-8")
# Hugging Face schema: the second function of each language, all in one file.
with open(OUT / "hf_code_search_net.jsonl", "w", encoding="utf-8") as fh:
    for items in by_lang.values():
        i, f = items[1]
        fh.write(json.dumps(hf(i, f)) + "\n")


repo = HERE / "multilang_repo"
recs = []
meta = {"src/geometry.py": ("Python", "acme/geometry"), "web/cache.ts": ("TypeScript", "acme/webkit"),
        "lib/text.rs": ("Rust", "acme/textkit"), "src/ring_buffer.cpp": ("C++", "acme/rings"),
        "cmd/stats.go": ("Go", "acme/stats")}
for i, (rel, (lang, name)) in enumerate(meta.items()):
    recs.append({"id": f"{i:04d}", "content": (repo / rel).read_text(), "max_stars_repo_name": name,
                 "max_stars_repo_path": rel, "max_stars_count": 10 + i, "lang": lang})
recs.append({"id": "0005", "max_stars_repo_name": "acme/dotfiles", "max_stars_repo_path": "bin/backup.sh", "lang": "Shell",
             "max_stars_count": 3, "content": """#!/usr/bin/env bash
# Back up a directory into a dated tarball and keep the last N archives.
set -euo pipefail

src="${1:?usage: backup.sh DIR [KEEP]}"
keep="${2:-7}"
dest="${BACKUP_DIR:-$HOME/backups}"
mkdir -p "$dest"

stamp="$(date +%Y-%m-%d_%H%M%S)"
archive="$dest/$(basename "$src")_$stamp.tar.gz"
tar -czf "$archive" -C "$(dirname "$src")" "$(basename "$src")"
echo "wrote $archive"

# Delete all but the newest $keep archives of this directory.
ls -1t "$dest/$(basename "$src")"_*.tar.gz | tail -n +"$((keep + 1))" | xargs -r rm --
"""})
with open(HERE / "wholefile" / "stack_sample.jsonl", "w") as f:
    for r in recs:
        f.write(json.dumps(r) + "\n")
