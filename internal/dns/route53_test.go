//go:build integration

package dns

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	r53 "github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/kumotest"
	"github.com/hoistdev/hoist/internal/usererr"
)

// TestRoute53ThroughKumo keeps records in a Route 53 hosted zone through
// libdns/route53 against kumo: they appear, follow an address change and
// vanish, and a record hoist did not make is left alone. The zone is
// read back with the AWS SDK, not through hoist. A zone that does not
// exist is a clear error.
func TestRoute53ThroughKumo(t *testing.T) {
	kumotest.Start(t)
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	api := r53.NewFromConfig(cfg)
	hz, err := api.CreateHostedZone(ctx, &r53.CreateHostedZoneInput{Name: aws.String("hoist.test."), CallerReference: aws.String(fmt.Sprint(time.Now().UnixNano()))})
	if err != nil {
		t.Fatal(err)
	}
	zoneID := hz.HostedZone.Id
	_, err = api.ChangeResourceRecordSets(ctx, &r53.ChangeResourceRecordSetsInput{HostedZoneId: zoneID, ChangeBatch: &types.ChangeBatch{Changes: []types.Change{{
		Action: types.ChangeActionCreate, ResourceRecordSet: &types.ResourceRecordSet{Name: aws.String("legacy.hoist.test."), Type: types.RRTypeA,
			TTL: aws.Int64(300), ResourceRecords: []types.ResourceRecord{{Value: aws.String("192.0.2.9")}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	read := func() map[string][]string {
		out, err := api.ListResourceRecordSets(ctx, &r53.ListResourceRecordSetsInput{HostedZoneId: zoneID})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string][]string{}
		for _, s := range out.ResourceRecordSets {
			if s.Type == types.RRTypeSoa || s.Type == types.RRTypeNs {
				continue
			}
			key := strings.TrimSuffix(aws.ToString(s.Name), ".") + " " + string(s.Type)
			for _, r := range s.ResourceRecords {
				m[key] = append(m[key], strings.Trim(aws.ToString(r.Value), `"`))
			}
			sort.Strings(m[key])
		}
		return m
	}

	p, err := New("route53", Credentials{"region": "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	z := &Zone{Provider: "route53", Name: "hoist.test", Owner: "shop", API: p}
	names := []string{"www.hoist.test", "api.hoist.test"}
	if _, err := sync2(t, z, names, addrs("10.0.0.1", "10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	legacy := map[string][]string{"legacy.hoist.test A": {"192.0.2.9"}}
	want := map[string][]string{
		"www.hoist.test A": {"10.0.0.1", "10.0.0.2"}, "api.hoist.test A": {"10.0.0.1", "10.0.0.2"},
		"_hoist.www.hoist.test TXT": {"heritage=hoist,hoist/owner=shop"}, "_hoist.api.hoist.test TXT": {"heritage=hoist,hoist/owner=shop"},
		"legacy.hoist.test A": {"192.0.2.9"},
	}
	if diff := cmp.Diff(want, read()); diff != "" {
		t.Errorf("zone after the first run (-want +got):\n%s", diff)
	}

	if _, err := sync2(t, z, names, addrs("10.0.0.1", "10.0.0.3")); err != nil {
		t.Fatal(err)
	}
	want["www.hoist.test A"], want["api.hoist.test A"] = []string{"10.0.0.1", "10.0.0.3"}, []string{"10.0.0.1", "10.0.0.3"}
	if diff := cmp.Diff(want, read()); diff != "" {
		t.Errorf("zone after an address change (-want +got):\n%s", diff)
	}

	if _, err := sync2(t, z, append(names, "legacy.hoist.test"), addrs("10.0.0.1", "10.0.0.3")); err == nil || !strings.Contains(err.Error(), "legacy.hoist.test: A 192.0.2.9, not made by hoist") {
		t.Errorf("apply over a stranger's record: %v", err)
	}

	if _, err := sync2(t, z, nil, Targets{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(legacy, read()); diff != "" {
		t.Errorf("zone after destroy (-want +got):\n%s", diff)
	}

	z.Name = "nowhere.test"
	_, err = sync2(t, z, []string{"www.nowhere.test"}, addrs("10.0.0.1"))
	if err == nil || !strings.HasPrefix(err.Error(), "route53 (zone nowhere.test): read zone") || !strings.Contains(usererr.HintOf(err), "check dns.zone") {
		t.Errorf("a zone that does not exist: %v (hint %q)", err, usererr.HintOf(err))
	}
}
