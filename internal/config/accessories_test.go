package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAccessoryDefaults(t *testing.T) {
	tests := map[string]struct {
		yaml string
		want Accessory
	}{
		"postgresql": {"  db:\n    service: postgresql\n", Accessory{Service: "postgresql", Package: "postgresql", Port: 5432,
			Listen: "loopback", Database: "hello", Env: "DATABASE_URL", Backup: AccessoryBackup{Schedule: "daily", Keep: 7}}},
		"redis": {"  db:\n    service: redis\n", Accessory{Service: "redis", Package: "redis-server", Port: 6379,
			Listen: "loopback", Env: "REDIS_URL"}},
		"valkey on a private address": {"  db:\n    service: valkey\n    listen: 10.0.1.5\n    host: db1\n", Accessory{Service: "valkey", Host: "db1",
			Package: "valkey-server", Port: 6379, Listen: "10.0.1.5", Env: "REDIS_URL"}},
		"postgresql set": {"  db:\n    service: postgresql\n    port: 5433\n    database: shop_prod\n    env: PG_URL\n    backup: {schedule: hourly, keep: 3}\n",
			Accessory{Service: "postgresql", Package: "postgresql", Port: 5433, Listen: "loopback", Database: "shop_prod", Env: "PG_URL",
				Backup: AccessoryBackup{Schedule: "hourly", Keep: 3}}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := Parse("hoist.yml", []byte(valid+"accessories:\n"+tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.Accessories["db"]); diff != "" {
				t.Errorf("accessory (-want +got):\n%s", diff)
			}
		})
	}
	c, err := Parse("hoist.yml", []byte(strings.Replace(valid, "app: hello", "app: web-shop", 1)+"accessories:\n  db: {service: postgresql}\n"))
	if err != nil || c.Accessories["db"].Database != "web_shop" {
		t.Errorf("database of app web-shop = %q, %v; want web_shop", c.Accessories["db"].Database, err)
	}
}

// recipient is an age public key, for backup.offsite.
const recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"

func TestAccessoryErrorsNamePosition(t *testing.T) {
	acc := valid + "accessories:\n  db:\n    service: postgresql\n"
	tests := map[string]parseError{
		"unknown service":     {valid + "accessories:\n  db:\n    service: mysql\n", `hoist.yml:11:14: accessories.db.service: unknown service "mysql"`},
		"missing service":     {valid + "accessories:\n  db:\n    port: 1\n", "hoist.yml:11:5: accessories.db.service: missing"},
		"bad name":            {valid + "accessories:\n  Db:\n    service: redis\n", `hoist.yml:10:3: accessories.Db: "Db" is not an accessory name`},
		"public listen":       {acc + "    listen: 8.8.8.8\n", "hoist.yml:12:13: accessories.db.listen: 8.8.8.8 is not a private address"},
		"listen not address":  {acc + "    listen: everywhere\n", `hoist.yml:12:13: accessories.db.listen: "everywhere" is not loopback`},
		"allow on loopback":   {acc + "    allow: [10.0.0.0/8]\n", "hoist.yml:12:12: accessories.db.allow: an accessory listening on loopback"},
		"public allow":        {acc + "    listen: 10.0.0.5\n    allow: [0.0.0.0/0]\n", "hoist.yml:13:13: accessories.db.allow[0]: 0.0.0.0/0 is not a private network"},
		"port too big":        {acc + "    port: 70000\n", "hoist.yml:12:11: accessories.db.port: 70000 is not a port an accessory can have"},
		"bad package":         {acc + "    package: \"pg; rm -rf /\"\n", `hoist.yml:12:14: accessories.db.package: "pg; rm -rf /" is not a Debian package name`},
		"bad database":        {acc + "    database: Shop-DB\n", `hoist.yml:12:15: accessories.db.database: "Shop-DB" is not a database name`},
		"bad schedule":        {acc + "    backup:\n      schedule: \"daily; reboot\"\n", `hoist.yml:13:17: accessories.db.backup.schedule: "daily; reboot" is not a schedule`},
		"keep none":           {acc + "    backup:\n      keep: -1\n", "hoist.yml:13:13: accessories.db.backup.keep: -1 backups"},
		"backup of redis":     {valid + "accessories:\n  cache:\n    service: redis\n    backup: {keep: 3}\n", "hoist.yml:10:3: accessories.cache: database and backup are for postgresql"},
		"offsite bucket":      {acc + "    backup:\n      offsite: {bucket: B_x, recipient: " + recipient + "}\n", `hoist.yml:13:25: accessories.db.backup.offsite.bucket: "B_x" is not a bucket name`},
		"offsite recipient":   {acc + "    backup:\n      offsite:\n        bucket: b-x\n        recipient: ssh-ed25519 AAAA\n", `hoist.yml:15:20: accessories.db.backup.offsite.recipient: "ssh-ed25519 AAAA" is not an age public key`},
		"offsite endpoint":    {acc + "    backup:\n      offsite:\n        bucket: b-x\n        endpoint: https://k:s@s3.example.com\n        recipient: " + recipient + "\n", `hoist.yml:15:19: accessories.db.backup.offsite.endpoint: "https://k:s@s3.example.com" is not an endpoint`},
		"offsite one key":     {acc + "    backup:\n      offsite:\n        bucket: b-x\n        recipient: " + recipient + "\n        access_key_secret: AWS_KEY\n", `hoist.yml:13:7: accessories.db.backup.offsite: access_key_secret and secret_key_secret go together`},
		"two on one variable": {acc + "  db2:\n    service: postgresql\n    port: 5433\n", "hoist.yml:13:5: accessories.db2.env: DATABASE_URL already carries accessory db's URL"},
	}
	testParseErrors(t, tests)
	withEnv := strings.Replace(valid, "  command: ./hello\n", "  command: ./hello\n  env:\n    DATABASE_URL: x\n", 1) + "accessories:\n  db: {service: postgresql}\n"
	if _, err := Parse("hoist.yml", []byte(withEnv)); err == nil || !strings.Contains(err.Error(), "also set in run.env") {
		t.Errorf("DATABASE_URL in run.env and an accessory: %v", err)
	}
}
