package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"
)

// askHostKeys is how hoist asks about a host never seen before, as ssh
// does: on the terminal it runs on (the question on stderr, the answer
// from stdin), while the other hosts' lines wait (mu); nil without a
// terminal, where such a host is refused and the error says how to
// accept it (--accept-new-host-keys, StrictHostKeyChecking accept-new).
func askHostKeys(s *streams, mu *sync.Mutex) func(string) (bool, error) {
	in, ok := s.in.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) || !isTerminal(s.err) {
		return nil
	}
	return func(question string) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprint(s.err, question)
		for range 3 {
			line, err := readLine(in)
			if err != nil {
				return false, err
			}
			switch strings.ToLower(strings.TrimSpace(line)) {
			case "yes":
				return true, nil
			case "no":
				return false, nil
			}
			fmt.Fprint(s.err, "Please type 'yes' or 'no': ")
		}
		return false, nil
	}
}

// readLine reads one line, byte by byte so that nothing after it is
// taken from what the verb reads next, and at most 1 KiB of it.
func readLine(r io.Reader) (string, error) {
	var line []byte
	b := make([]byte, 1)
	for len(line) < 1<<10 {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				return string(line), nil
			}
			line = append(line, b[0])
		}
		if err == io.EOF && len(line) > 0 {
			return string(line), nil
		}
		if err != nil {
			return "", fmt.Errorf("read the answer: %w", err)
		}
	}
	return string(line), nil
}
