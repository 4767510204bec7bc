package host

import (
	"context"
	"fmt"
	"io"

	"github.com/hoistdev/hoist/internal/bucket"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/usererr"
)

// A host catches up with its store by itself. The store-sync unit,
// which setup installs for an app with a store, runs `hoist host
// store-sync` after the boot unit has started the current release: it
// reads the store's current record and, when the record names another
// release, fetches it as a deploy's store-fetch does, reads the host
// spec the record names and activates the release with it, as a deploy
// would. So a host that was down or cut off while a deploy went by, or
// that was started again from an image, serves what the store names
// without anyone pushing it. What it activates is vouched for by the
// record's signature alone, through the sums it names: the release and
// the spec a bucket writer puts there are refused.

// syncFromStore brings the host to the release the store's current
// record names. attempted is set when it tried to switch.
func syncFromStore(ctx context.Context, l Layout, dest string, r bucket.Retries, log io.Writer) (out hostproto.StoreSynced, attempted bool, err error) {
	if !hasStore(l) {
		return out, false, nil // set up without a store: nothing to follow
	}
	st, key, err := openHostStore(ctx, l, r)
	if err != nil {
		return out, false, err
	}
	defer func() { out.Fetched = st.GotBytes() }()
	// A deploy holds the lock while it brings this host along; the unit
	// tries again later.
	unlock, err := lockHost(l, "store-sync")
	if err != nil {
		return out, false, err
	}
	defer unlock()
	raw, err := currentRecord(ctx, st)
	if err != nil {
		return out, false, err
	}
	rec, fetched, err := fetchRecord(ctx, l, dest, st, key, raw, true)
	out.StoreFetched = fetched
	if err != nil {
		return out, false, err
	}
	cur := l.CurrentID()
	if rec.Release == cur {
		fmt.Fprintf(log, "release %s, which the store names (record %d), is current\n", cur, rec.Seq)
		return out, false, nil
	}
	if rec.Spec == "" {
		return out, false, usererr.New("the store's record of %s names no host spec (a hoist from before store sync wrote it): this host fetched the release and still serves %s", rec.Release, orNoRelease(cur)).
			WithHint("deploy again with this hoist to switch every host")
	}
	b, err := st.Spec(ctx, rec.Spec)
	if err != nil {
		return out, false, refusedRelease(rec, err)
	}
	spec, err := hostproto.DecodeArgs[hostproto.Spec](b)
	if err == nil && spec.App != l.App {
		err = fmt.Errorf("its host spec is %s's", spec.App)
	}
	if err != nil {
		return out, false, refusedRelease(rec, err)
	}
	fmt.Fprintf(log, "the store names release %s (record %d, %s by %s): switching from %s\n", rec.Release, rec.Seq, rec.Op, orSomeone(rec.By), orNoRelease(cur))
	if err := syncActivate(ctx, l, &spec, rec.Release, log); err != nil {
		return out, true, err
	}
	out.Switched = true
	return out, true, nil
}

func orNoRelease(id string) string {
	if id == "" {
		return "no release"
	}
	return id
}

func orSomeone(by string) string {
	if by == "" {
		return "someone"
	}
	return by
}

// syncActivate is activateLogged; the store's tests, which run without
// systemd, see what it is given instead (the lab's run it).
var syncActivate = activateLogged
