package fastloop

import "golang.org/x/sys/unix"

// pollRDHUP is poll(2)'s "peer closed its writing side", which Linux
// alone reports; left() sees a client gone with bytes still unread by it.
const pollRDHUP = unix.POLLRDHUP
