package systemd

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// ExecStart renders argv as the value of an ExecStart= line that systemd
// splits back into exactly argv (systemd.service(5) "Command lines",
// systemd.syntax(7)): every % is doubled (specifiers), every $ doubled
// (environment substitution), and a word with white space, quotes,
// backslashes, control characters or a lone ";" (the command separator)
// is put in double quotes with C-style escapes.
//
// argv[0] is the program: an absolute path, or a bare name systemd looks
// up in its search path. systemd reads a leading @ - : + ! | as a prefix
// even inside quotes, and refuses quotes, backslashes and control
// characters in the program's path, so a program naming any of those is
// an error rather than a unit that runs something else.
func ExecStart(argv []string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("exec command: no program")
	}
	if err := checkProgram(argv[0]); err != nil {
		return "", err
	}
	for _, a := range argv {
		if strings.Contains(a, "\x00") || !utf8.ValidString(a) {
			// No command line carries a NUL; systemd runs other bytes
			// that are not UTF-8, but then cannot show the unit over
			// D-Bus (systemctl show fails), which hoist's status needs.
			return "", fmt.Errorf("exec command: argument %q is not UTF-8 text", a)
		}
	}
	words := make([]string, len(argv))
	for i, a := range argv {
		words[i] = execWord(a)
	}
	return strings.Join(words, " "), nil
}

// checkProgram refuses a program path systemd would not run as written.
func checkProgram(p string) error {
	switch {
	case p == "":
		return errors.New("exec command: empty program")
	case strings.ContainsAny(p[:1], "@-:+!|"):
		return fmt.Errorf("exec command: program %q starts with %q, which systemd reads as a prefix; give its absolute path", p, p[:1])
	case strings.ContainsAny(p, "\"'\\$") || strings.ContainsFunc(p, isControl):
		// systemd refuses quotes, backslashes and control characters in
		// the path, and would expand a $ in argv[0] but not in the path.
		return fmt.Errorf("exec command: program %q has a quote, backslash, $ or control character", p)
	case strings.Contains(p, "/") && !path.IsAbs(p):
		return fmt.Errorf("exec command: program %q is a relative path; systemd needs an absolute path or a bare name", p)
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("exec command: program %q names a directory", p)
	}
	return nil
}

// execWord renders one word of a command line.
func execWord(s string) string { return quoteWord(escapeWord(s)) }

// escapeWord doubles s's % and $ and escapes what double quotes need;
// it reports whether the word must be quoted.
func escapeWord(s string) (string, bool) {
	s = strings.NewReplacer("%", "%%", "$", "$$").Replace(s)
	if s != "" && s != ";" && !strings.ContainsAny(s, " \t\"'\\") && !strings.ContainsFunc(s, isControl) {
		return s, false
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case isControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String(), true
}

func quoteWord(s string, quote bool) string {
	if quote {
		return `"` + s + `"`
	}
	return s
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }
