package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

const storeKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0fLG8JYv0tD5nUW6lTm2ZUlnEyJz7c3PEW0GBl6Hq8 hoist store key of hello"

func TestStoreDefaults(t *testing.T) {
	c, err := Parse("hoist.yml", []byte(valid+"store:\n  bucket: hello-releases\n  public_key: "+storeKey+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Store{Bucket: "hello-releases", Prefix: "hello/store/", Region: "us-east-1", PublicKey: storeKey}
	if diff := cmp.Diff(want, c.Store); diff != "" {
		t.Errorf("store (-want +got):\n%s", diff)
	}
	if c.Deploy.Ship != ShipStore {
		t.Errorf("with a store, deploy.ship = %q, want store", c.Deploy.Ship)
	}
	c, err = Parse("hoist.yml", []byte(valid+"store:\n  bucket: hello-releases\ndeploy:\n  ship: push\n"))
	if err != nil || c.Deploy.Ship != ShipPush {
		t.Errorf("ship: push with a store = %q, %v", c.Deploy.Ship, err)
	}
	c, err = ParseDestination("hoist.yml", []byte(valid+"store:\n  bucket: hello-releases\n"), "hoist.staging.yml", []byte("hosts: [10.0.0.9]\n"), "staging")
	if err != nil || c.Store.Prefix != "hello/staging/store/" {
		t.Errorf("a destination's store prefix = %q, %v; want hello/staging/store/", c.Store.Prefix, err)
	}
}

func TestStoreErrorsNamePosition(t *testing.T) {
	st := valid + "store:\n  bucket: hello-releases\n"
	tests := map[string]parseError{
		"no bucket":        {valid + "store:\n  region: eu-west-1\n", "hoist.yml:10:3: store.bucket: missing"},
		"bad bucket":       {valid + "store:\n  bucket: Hello_Releases\n", `hoist.yml:10:11: store.bucket: "Hello_Releases" is not a bucket name`},
		"bad prefix":       {st + "  prefix: ../x\n", `hoist.yml:11:11: store.prefix: "../x" is not a key prefix`},
		"bad endpoint":     {st + "  endpoint: ftp://s3\n", `hoist.yml:11:13: store.endpoint: "ftp://s3" is not an endpoint`},
		"rsa key":          {st + "  public_key: ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7\n", `hoist.yml:11:15: store.public_key: "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7" is not an ed25519 public key line`},
		"age key":          {st + "  public_key: " + recipient + "\n", "hoist.yml:11:15: store.public_key: "},
		"one credential":   {st + "  access_key_secret: K\n", "hoist.yml:9:1: store: access_key_secret and secret_key_secret go together"},
		"ship without one": {valid + "deploy:\n  ship: store\n", "hoist.yml:10:9: deploy.ship: hosts fetch releases from the store, and there is none"},
		"unknown ship":     {st + "deploy:\n  ship: carrier-pigeon\n", `hoist.yml:12:9: deploy.ship: unknown way "carrier-pigeon"`},
	}
	testParseErrors(t, tests)
}
