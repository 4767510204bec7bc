package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// incr increments key in the Redis at rawURL (redis://:PASSWORD@HOST:PORT)
// and returns its new value, speaking just enough RESP for it: the
// example needs no client library.
func incr(ctx context.Context, rawURL, key string) (int64, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, fmt.Errorf("REDIS_URL: %w", err)
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	if pw, ok := u.User.Password(); ok {
		if _, err := command(conn, r, "AUTH", pw); err != nil {
			return 0, err
		}
	}
	reply, err := command(conn, r, "INCR", key)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimPrefix(reply, ":"), 10, 64)
}

// command sends one command and reads a one-line reply.
func command(conn net.Conn, r *bufio.Reader, args ...string) (string, error) {
	msg := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		msg += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(msg)); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "-") {
		return "", fmt.Errorf("redis: %s", line[1:])
	}
	return line, nil
}
