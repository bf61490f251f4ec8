"""The attacks of issue 19, as generated code in each language. Every program prints `LEAK <what>`
when an attempt works and nothing like it when the sandbox stops it; the harness (test_attacks.py)
also checks from outside: files outside the working directory, connections to its listener,
processes left alive (they carry the marker `shoalsurv` / `shoalbomb` / `31.337`), the canary key.

Placeholders filled in per run: OUTSIDE (a directory the sandbox must not write to), DB (the
database file), SECRET (a 0600 file holding the canary), PORT (a loopback listener)."""
from __future__ import annotations

PY = {
    "dir_fd": """
import os
fd = os.open("OUTSIDE", os.O_RDONLY)
os.close(os.open("dirfd.txt", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
print("LEAK dir_fd")
""",
    "fchdir": """
import os
fd = os.open("OUTSIDE", os.O_RDONLY)
os.fchdir(fd)
open("fchdir.txt", "w").write("x")
print("LEAK fchdir")
""",
    "link": """
import os
os.link("solution.py", "OUTSIDE/link.txt")
print("LEAK link")
""",
    "main_globals": """
import __main__
__main__.WORKDIR = ""
for name in list(vars(__main__)):
    setattr(__main__, name, None)
open("OUTSIDE/main.txt", "w").write("x")
print("LEAK main_globals")
""",
    "proc_environ": """
import os
dump = []
for pid in ["self", str(os.getppid())] + [p for p in os.listdir("/proc") if p.isdigit()]:
    for what in ("environ", "cmdline", "mem"):
        try:
            with open(f"/proc/{pid}/{what}", "rb") as fh:
                data = fh.read(1 << 16)
        except OSError:
            continue
        if b"CANARY" in data or b"duckdb" in data:
            print("LEAK proc", pid, what)
        dump.append(data[:500])
raise AssertionError(dump)
""",
    "read_db": """
try:
    data = open("DB", "rb").read()
    print("LEAK db", len(data))
except OSError as exc:
    print("no db:", type(exc).__name__)
    raise
""",
    "read_shadow": """
data = open("/etc/shadow").read()
print("LEAK shadow", len(data))
""",
    "read_secret": """
data = open("SECRET").read()
print("LEAK secret", data)
""",
    "network": """
import socket
s = socket.create_connection(("127.0.0.1", PORT), timeout=2)
s.sendall(b"hello")
print("LEAK network")
""",
    "setns": """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
for pid in ("1", str(os.getppid())):
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    if libc.setns(fd, 0) == 0:
        print("LEAK setns", pid)
import socket
socket.create_connection(("127.0.0.1", PORT), timeout=2)
print("LEAK network after setns")
""",
    "fork_setsid": """
import os, time
if os.fork() == 0:
    os.setsid()
    open("/proc/self/comm", "w").write("shoalsurv")
    time.sleep(60)
    os._exit(0)
print("parent done")
""",
    "pipe_holder": """
import os, time
if os.fork() == 0:
    open("/proc/self/comm", "w").write("shoalsurv")
    time.sleep(60)
    os._exit(0)
time.sleep(60)
""",
    "fork_bomb": """
import os
open("/proc/self/comm", "w").write("shoalbomb")
while True:
    try:
        os.fork()
    except OSError:
        pass
""",
}

# C++: the whole program is the tests' main (the solution only declares a marker)
_CPP_HEAD = """#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <sched.h>
#include <signal.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
static int leaks = 0;
static void leak(const char* what) { std::printf("LEAK %s\\n", what); leaks++; }
static long slurp(const char* path) {
    int fd = open(path, O_RDONLY); if (fd < 0) return -1;
    static char buf[1 << 16]; long n = read(fd, buf, sizeof buf); close(fd); return n;
}
"""
CPP = {
    "escape_fs": _CPP_HEAD + """int main() {
    int dir = open("OUTSIDE", O_RDONLY | O_DIRECTORY);
    if (dir >= 0) {
        int f = openat(dir, "openat.txt", O_CREAT | O_WRONLY, 0644); if (f >= 0) leak("openat");
        if (fchdir(dir) == 0) { int g = open("fchdir.txt", O_CREAT | O_WRONLY, 0644); if (g >= 0) leak("fchdir"); }
    }
    if (link("program", "OUTSIDE/link.txt") == 0) leak("link");
    int h = open("/usr/shoal-escape.txt", O_CREAT | O_WRONLY, 0644); if (h >= 0) leak("write /usr");
    h = open("/shoal-escape.txt", O_CREAT | O_WRONLY, 0644); if (h >= 0) leak("write /");
    return 7;   // the tests fail
}
""",
    "read_secrets": _CPP_HEAD + """int main() {
    if (slurp("DB") >= 0) leak("db");
    if (slurp("/etc/shadow") >= 0) leak("shadow");
    if (slurp("SECRET") >= 0) leak("secret");
    DIR* d = opendir("/proc");
    for (struct dirent* e; d && (e = readdir(d));) {
        char p[300]; std::snprintf(p, sizeof p, "/proc/%s/environ", e->d_name);
        static char buf[1 << 16]; int fd = open(p, O_RDONLY); if (fd < 0) continue;
        long n = read(fd, buf, sizeof buf - 1); close(fd); if (n <= 0) continue; buf[n] = 0;
        for (long i = 0; i < n; i++) if (!std::strncmp(buf + i, "CANARY", 6)) leak("environ");
        std::fwrite(buf, 1, n, stderr);
    }
    return 7;   // the tests fail
}
""",
    "include_secret": "#include \"SECRET\"\nint main() { return 0; }\n",
    "network_setns": _CPP_HEAD + """int main() {
    for (const char* p : {"/proc/1/ns/net", "/proc/self/ns/net"}) {
        int fd = open(p, O_RDONLY); if (fd >= 0 && setns(fd, CLONE_NEWNET) == 0) std::printf("setns %s worked\\n", p);
    }
    if (unshare(CLONE_NEWUSER) == 0) std::printf("nested user namespace\\n");
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a{}; a.sin_family = AF_INET; a.sin_port = htons(PORT); a.sin_addr.s_addr = htonl(0x7f000001);
    if (connect(s, (struct sockaddr*)&a, sizeof a) == 0) leak("network");
    return 7;   // the tests fail
}
""",
    "fork_setsid": _CPP_HEAD + """int main() {
    if (fork() == 0) { setsid(); prctl(PR_SET_NAME, "shoalsurv"); execl("/bin/sleep", "sleep", "31.337", (char*)0); _exit(0); }
    return 0;
}
""",
    "pipe_holder": _CPP_HEAD + """int main() {
    if (fork() == 0) { prctl(PR_SET_NAME, "shoalsurv"); execl("/bin/sleep", "sleep", "31.337", (char*)0); _exit(0); }
    sleep(60);
    return 0;
}
""",
    "fork_bomb": _CPP_HEAD + """int main() {
    prctl(PR_SET_NAME, "shoalbomb");
    for (;;) fork();
}
""",
}

JS = {
    "escape_fs": """
const fs = require('fs');
for (const p of ['OUTSIDE/js.txt', '/usr/shoal-escape.txt', '/shoal-escape.txt']) {
  try { fs.writeFileSync(p, 'x'); console.log('LEAK write ' + p); } catch (e) { console.error('no', p, e.code); }
}
process.exit(5);
""",
    "read_secrets": """
const fs = require('fs');
for (const p of ['DB', '/etc/shadow', 'SECRET']) {
  try { const d = fs.readFileSync(p); console.log('LEAK read ' + p + ' ' + d.length); } catch (e) { console.error('no', p, e.code); }
}
for (const pid of fs.readdirSync('/proc').filter(p => /^\\d+$/.test(p))) {
  try { const d = fs.readFileSync('/proc/' + pid + '/environ', 'utf8'); if (d.includes('CANARY')) console.log('LEAK environ'); console.error(d); } catch (e) {}
}
throw new Error('done');
""",
    "network": """
const net = require('net');
const s = net.connect(PORT, '127.0.0.1', () => { console.log('LEAK network'); s.end(); });
s.on('error', e => { console.error('NET', e.code); process.exit(3); });
""",
    "spawn_survivor": """
const cp = require('child_process');
const c = cp.spawn('/bin/sleep', ['31.337'], {detached: true, stdio: 'inherit'});
c.unref();
""",
}

JAVA = {
    "escape_fs": """
public class AttackTest {
    public static void main(String[] args) throws Exception {
        for (String p : new String[] {"OUTSIDE/java.txt", "/usr/shoal-escape.txt", "/shoal-escape.txt"}) {
            try { new java.io.FileOutputStream(p).close(); System.out.println("LEAK write " + p); }
            catch (Exception e) { System.err.println("no " + p); }
        }
        throw new AssertionError("done");
    }
}
""",
    "read_secrets": """
public class AttackTest {
    public static void main(String[] args) throws Exception {
        for (String p : new String[] {"DB", "/etc/shadow", "SECRET"}) {
            try { byte[] d = java.nio.file.Files.readAllBytes(java.nio.file.Path.of(p)); System.out.println("LEAK read " + p + " " + d.length); }
            catch (Exception e) { System.err.println("no " + p); }
        }
        java.io.File[] procs = new java.io.File("/proc").listFiles();
        for (java.io.File f : procs) {
            try { String d = new String(java.nio.file.Files.readAllBytes(java.nio.file.Path.of(f.getPath(), "environ")));
                  if (d.contains("CANARY")) System.out.println("LEAK environ"); System.err.println(d); } catch (Exception e) { }
        }
        throw new AssertionError("done");
    }
}
""",
    "network": """
public class AttackTest {
    public static void main(String[] args) throws Exception {
        new java.net.Socket("127.0.0.1", PORT).close();
        System.out.println("LEAK network");
    }
}
""",
    "spawn_survivor": """
public class AttackTest {
    public static void main(String[] args) throws Exception {
        new ProcessBuilder("/bin/sleep", "31.337").inheritIO().start();
    }
}
""",
}


def fill(code: str, arena) -> str:
    return (code.replace("OUTSIDE", str(arena.outside)).replace("SECRET", str(arena.secret))
            .replace("PORT", str(arena.port)).replace("DB", str(arena.db)))
