package config

import (
	"reflect"

	"golang.org/x/crypto/ssh"
)

func (c *Config) validateStore() error {
	s := c.Store
	at := func(key string) string { return "$.store" + key }
	switch {
	case !s.On() && !reflect.ValueOf(s).IsZero():
		return errAt(at(".bucket"), "missing; name the bucket the releases go in, or drop the store section")
	case !s.On():
		if c.Deploy.Ship == ShipStore {
			return errAt("$.deploy.ship", "hosts fetch releases from the store, and there is none: add a store section, or write ship: push")
		}
		return nil
	}
	if err := validateBucket(at, s.Bucket, s.Prefix, s.Region, s.Endpoint, s.AccessKeySecret, s.SecretKeySecret); err != nil {
		return err
	}
	if s.PublicKey != "" {
		pk, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(s.PublicKey))
		if err != nil || len(rest) > 0 || pk.Type() != ssh.KeyAlgoED25519 {
			return errAt(at(".public_key"), "%q is not an ed25519 public key line (ssh-ed25519 AAAA...): `hoist store key` prints the store key's", s.PublicKey)
		}
	}
	return nil
}
