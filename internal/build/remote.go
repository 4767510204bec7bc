package build

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// Remote builds on a build host over SSH: the checkout goes there as a
// tar stream, the command runs there, and the output comes back. Caches
// stay on the build host, under /var/cache/hoist/builds.
type Remote struct {
	Host string
	Dial func(ctx context.Context, host string) (transport.Conn, error)
	// Caches are the cache paths from hoist.yml.
	Caches []string
}

func (r *Remote) Name() string     { return "remote" }
func (r *Remote) Identity() string { return "remote " + r.Host }

func (r *Remote) Build(ctx context.Context, job Job) error {
	conn, err := r.Dial(ctx, r.Host)
	if err != nil {
		return usererr.Wrap(err, "cannot reach the build host")
	}
	defer conn.Close()
	key, err := CacheKey(job.Dir, r.Identity())
	if err != nil {
		return err
	}
	suffix, err := randomName()
	if err != nil {
		return err
	}
	top := "/var/tmp/hoist-build/" + job.App + "-" + suffix
	dir := job.workDir(top) // the app's directory in the checkout
	cacheRoot := "/var/cache/hoist/builds/" + job.App + "/" + key
	q := transport.Quote

	fmt.Fprintf(job.Log, "sending the checkout to %s\n", r.Host)
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(release.WriteTar(pw, job.top(), func(rel string) bool { return rel == ".git" }))
	}()
	if err := conn.Run(ctx, "mkdir -p "+q(top)+" && tar --warning=no-timestamp -x -C "+q(top), pr, job.Log, job.Log); err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("send checkout to %s: %w", r.Host, err)
	}
	defer conn.Run(context.WithoutCancel(ctx), "rm -rf "+q(top), nil, io.Discard, io.Discard)

	// Caches move in by rename before the command and back after it.
	var restore, save []string
	for _, p := range r.Caches {
		if filepath.IsAbs(p) {
			continue // the build host's own paths persist by themselves
		}
		stored := cacheRoot + "/" + strings.ReplaceAll(filepath.Clean(p), "/", "%")
		inTree := dir + "/" + filepath.Clean(p)
		restore = append(restore, fmt.Sprintf("if [ -d %s ]; then rm -rf %s; mkdir -p %s; mv %s %s; fi",
			q(stored), q(inTree), q(filepath.Dir(inTree)), q(stored), q(inTree)))
		save = append(save, fmt.Sprintf("if [ -d %s ]; then rm -rf %s; mv %s %s; fi", q(inTree), q(stored), q(inTree), q(stored)))
	}
	var env []string
	for _, kv := range job.env() {
		env = append(env, q(kv))
	}
	script := "set -e; mkdir -p " + q(cacheRoot) + "; " + strings.Join(restore, "; ")
	if len(restore) > 0 {
		script += "; "
	}
	// The caches are saved only after the output is fetched: the output
	// may live inside one (mix's _build).
	script += "cd " + q(dir) + " && env " + strings.Join(env, " ") + " sh -c " + q(job.Command)
	fmt.Fprintf(job.Log, "building on %s\n", r.Host)
	if err := conn.Run(ctx, script, nil, job.output(), job.output()); err != nil {
		return commandError(ctx, job, err)
	}
	out := filepath.Join(job.Dir, job.Output)
	os.RemoveAll(out)
	pr2, pw2 := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := release.UnpackTar(pr2, out)
		io.Copy(io.Discard, pr2) // tar pads its stream past the end marker
		errc <- err
	}()
	err = conn.Run(ctx, "tar -c -C "+q(dir+"/"+job.Output)+" .", nil, pw2, job.Log)
	pw2.CloseWithError(err)
	if uerr := <-errc; err == nil {
		err = uerr
	}
	if err != nil {
		return usererr.Wrap(err, "fetching the build output %s from %s failed", job.Output, r.Host).
			WithHint("build.command must write the release into build.output")
	}
	if len(save) > 0 {
		if err := conn.Run(ctx, strings.Join(save, "; "), nil, job.Log, job.Log); err != nil {
			fmt.Fprintf(job.Log, "warning: saving build caches on %s: %v\n", r.Host, err)
		}
	}
	return nil
}

func randomName() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
