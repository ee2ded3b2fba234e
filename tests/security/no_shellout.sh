#!/bin/sh
# The daemon never runs other programs (docs/security.md): no system(),
# popen(), exec*(), fork() or posix_spawn() in C, no os.execute or
# io.popen in Lua, and no FFI declaration of any of them.  Fails, naming
# file:line, if one appears in host/ ring/ bindings/ lua/.
#
#   tests/security/no_shellout.sh [SOURCE_DIR]
top=${1:-$(dirname "$0")/../..}
cd "$top" || exit 2
for d in host ring bindings lua; do
	[ -d "$d" ] || { echo "no_shellout: $top/$d is missing" >&2; exit 2; }
done

c='\b(system|popen|execl|execlp|execle|execv|execve|execvp|execvpe|fexecve|fork|vfork|posix_spawn|posix_spawnp)[[:space:]]*\('
lua='os\.execute|io\.popen|\b(system|popen|execl|execlp|execle|execv|execve|execvp|execvpe|fork|vfork|posix_spawn|posix_spawnp)[[:space:]]*\('

found=$( { grep -rnE "$c" --include='*.c' --include='*.h' host ring bindings
	   grep -rnE "$lua" --include='*.lua' lua; })
if [ -n "$found" ]; then
	echo "no_shellout: the daemon must not run other programs:" >&2
	echo "$found" >&2
	exit 1
fi
echo "no_shellout: none in host/ ring/ bindings/ lua/"
