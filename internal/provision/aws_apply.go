package provision

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	acmtypes "github.com/aws/aws-sdk-go-v2/service/acm/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// Apply carries out the changes in order, with ids found afresh.
func (p *awsProvider) Apply(ctx context.Context, changes []Change, env ApplyEnv) error {
	if _, err := p.Observe(ctx); err != nil {
		return err
	}
	for _, c := range changes {
		var err error
		switch c.Action {
		case Create:
			err = p.create(ctx, c.Resource, env)
		case Update:
			err = p.update(ctx, c.Resource)
		case Replace:
			if err = p.remove(ctx, *c.Was); err == nil {
				err = p.create(ctx, c.Resource, env)
			}
		case Delete:
			err = p.remove(ctx, c.Resource)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Destroy removes what Observe found, dependents first.
func (p *awsProvider) Destroy(ctx context.Context, inv *Inventory, log io.Writer) error {
	p.o.Log = log
	if _, err := p.Observe(ctx); err != nil {
		return err
	}
	for i := len(inv.Resources) - 1; i >= 0; i-- {
		if err := p.remove(ctx, inv.Resources[i]); err != nil {
			return err
		}
	}
	return nil
}

func (p *awsProvider) logf(format string, args ...any) { fmt.Fprintf(p.o.Log, format+"\n", args...) }

func (p *awsProvider) create(ctx context.Context, r Resource, env ApplyEnv) error {
	p.logf("creating %s %s", r.Kind, r.Name)
	switch r.Kind {
	case kindVPC:
		return p.createVPC(ctx)
	case kindGateway:
		return p.createGateway(ctx)
	case kindSubnet:
		return p.createSubnet(ctx, r.Name)
	case kindSG:
		return p.createSG(ctx, r.Name)
	case kindInstance:
		return p.createInstance(ctx, r, env)
	case kindCert:
		return p.createCert(ctx)
	case kindTargets:
		return p.createTargets(ctx)
	case kindBalancer:
		return p.createBalancer(ctx)
	case kindListener:
		return p.createListener(ctx, r.Name)
	case kindRegistrar:
		return p.register(ctx)
	}
	return fmt.Errorf("aws: cannot create a %s", r.Kind)
}

// tag puts hoist's tags on an EC2 resource. Creation calls carry them
// too (TagSpecifications, atomic on AWS); this covers calls that
// dropped them.
func (p *awsProvider) tag(ctx context.Context, id, role string, extra map[string]string) error {
	_, err := p.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: p.ec2Tags(role, extra)})
	if err != nil {
		return awsUserError("tag "+id, err)
	}
	p.found.ids[role] = id
	return nil
}

func (p *awsProvider) tagSpec(t ec2types.ResourceType, role string, extra map[string]string) []ec2types.TagSpecification {
	return []ec2types.TagSpecification{{ResourceType: t, Tags: p.ec2Tags(role, extra)}}
}

func (p *awsProvider) createVPC(ctx context.Context) error {
	out, err := p.ec2.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String(vpcCIDR), TagSpecifications: p.tagSpec(ec2types.ResourceTypeVpc, roleVPC, nil)})
	if err != nil {
		return awsUserError("create the VPC", err)
	}
	id := aws.ToString(out.Vpc.VpcId)
	if err := p.tag(ctx, id, roleVPC, nil); err != nil {
		return err
	}
	_, err = p.ec2.ModifyVpcAttribute(ctx, &ec2.ModifyVpcAttributeInput{VpcId: aws.String(id), EnableDnsHostnames: &ec2types.AttributeBooleanValue{Value: aws.Bool(true)}})
	return awsUserError("turn on DNS host names in the VPC", err)
}

func (p *awsProvider) createGateway(ctx context.Context) error {
	out, err := p.ec2.CreateInternetGateway(ctx, &ec2.CreateInternetGatewayInput{TagSpecifications: p.tagSpec(ec2types.ResourceTypeInternetGateway, roleGateway, nil)})
	if err != nil {
		return awsUserError("create the internet gateway", err)
	}
	id := aws.ToString(out.InternetGateway.InternetGatewayId)
	if err := p.tag(ctx, id, roleGateway, nil); err != nil {
		return err
	}
	vpc := p.found.ids[roleVPC]
	if _, err := p.ec2.AttachInternetGateway(ctx, &ec2.AttachInternetGatewayInput{InternetGatewayId: aws.String(id), VpcId: aws.String(vpc)}); err != nil {
		return awsUserError("attach the internet gateway", err)
	}
	return p.defaultRoute(ctx, vpc, id)
}

// defaultRoute sends the VPC's traffic to the internet through the
// gateway, in the main route table that AWS makes with every VPC (and
// deletes with it, so destroy has no route table to remove).
func (p *awsProvider) defaultRoute(ctx context.Context, vpc, igw string) error {
	out, err := p.ec2.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: []ec2types.Filter{
		{Name: aws.String("vpc-id"), Values: []string{vpc}},
		{Name: aws.String("association.main"), Values: []string{"true"}},
	}})
	if err != nil {
		return awsUserError("find the VPC's main route table", err)
	}
	for _, rt := range out.RouteTables {
		main := false
		for _, a := range rt.Associations {
			main = main || aws.ToBool(a.Main)
		}
		if aws.ToString(rt.VpcId) != vpc || !main {
			continue
		}
		_, err := p.ec2.CreateRoute(ctx, &ec2.CreateRouteInput{RouteTableId: rt.RouteTableId,
			DestinationCidrBlock: aws.String("0.0.0.0/0"), GatewayId: aws.String(igw)})
		if err != nil && errorCode(err) != "RouteAlreadyExists" {
			return awsUserError("route the VPC to the internet", err)
		}
		return nil
	}
	// AWS makes a main route table with every VPC; an emulator may not.
	p.logf("warning: VPC %s has no main route table; its hosts get no route to the internet", vpc)
	return nil
}

func (p *awsProvider) createSubnet(ctx context.Context, role string) error {
	zone := strings.TrimPrefix(role, "subnet-")
	i := 0
	for j, z := range p.spec.Zones {
		if z == zone {
			i = j
		}
	}
	out, err := p.ec2.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: aws.String(p.found.ids[roleVPC]),
		CidrBlock: aws.String(fmt.Sprintf("10.77.%d.0/24", i)), AvailabilityZone: aws.String(zone),
		TagSpecifications: p.tagSpec(ec2types.ResourceTypeSubnet, role, nil)})
	if err != nil {
		return awsUserError("create the subnet in "+zone, err)
	}
	id := aws.ToString(out.Subnet.SubnetId)
	if err := p.tag(ctx, id, role, nil); err != nil {
		return err
	}
	_, err = p.ec2.ModifySubnetAttribute(ctx, &ec2.ModifySubnetAttributeInput{SubnetId: aws.String(id), MapPublicIpOnLaunch: &ec2types.AttributeBooleanValue{Value: aws.Bool(true)}})
	return awsUserError("give the subnet's hosts public addresses", err)
}

func (p *awsProvider) rulesFor(role string) []rule {
	if role == roleBalancerSG {
		return p.balancerRules()
	}
	return p.hostRules()
}

func (p *awsProvider) createSG(ctx context.Context, role string) error {
	out, err := p.ec2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName:         aws.String(p.spec.App + "-" + p.spec.Env + "-" + role),
		Description:       aws.String("hoist: " + role + " of " + p.spec.App + " (" + p.spec.Env + ")"),
		VpcId:             aws.String(p.found.ids[roleVPC]),
		TagSpecifications: p.tagSpec(ec2types.ResourceTypeSecurityGroup, role, nil),
	})
	if err != nil {
		return awsUserError("create the "+role+" security group", err)
	}
	id := aws.ToString(out.GroupId)
	if err := p.tag(ctx, id, role, nil); err != nil {
		return err
	}
	return p.authorize(ctx, id, p.rulesFor(role))
}

func permission(r rule) ec2types.IpPermission {
	return ec2types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(r.port), ToPort: aws.Int32(r.port),
		IpRanges: []ec2types.IpRange{{CidrIp: aws.String(r.from), Description: descriptionOf(r.why)}}}
}

// descriptionOf is a rule's reason as EC2 takes it: ASCII letters,
// digits, spaces and ._-:/()#,@[]+=&;{}!$* up to 255 characters.
func descriptionOf(why string) *string {
	if why == "" {
		return nil
	}
	b := []byte(why)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(" ._-:/()#,@[]+=&;{}!$*", c) >= 0) {
			b[i] = ' '
		}
	}
	return aws.String(string(b[:min(len(b), 255)]))
}

func (p *awsProvider) authorize(ctx context.Context, id string, rs []rule) error {
	if len(rs) == 0 {
		return nil
	}
	var perms []ec2types.IpPermission
	for _, r := range rs {
		perms = append(perms, permission(r))
	}
	_, err := p.ec2.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(id), IpPermissions: perms})
	return awsUserError("allow traffic in security group "+id, err)
}

// updateSG brings a group's rules to what is wanted: new rules first,
// then old ones revoked, so that nothing wanted is ever closed.
func (p *awsProvider) updateSG(ctx context.Context, role string) error {
	id := p.found.ids[role]
	out, err := p.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{id}})
	if err != nil || len(out.SecurityGroups) == 0 {
		return awsUserError("describe security group "+id, err)
	}
	want := p.rulesFor(role)
	have := map[string]ec2types.IpPermission{}
	for _, perm := range out.SecurityGroups[0].IpPermissions {
		for _, r := range perm.IpRanges {
			have[fmt.Sprintf("%d %s", aws.ToInt32(perm.FromPort), aws.ToString(r.CidrIp))] = ec2types.IpPermission{IpProtocol: perm.IpProtocol,
				FromPort: perm.FromPort, ToPort: perm.ToPort, IpRanges: []ec2types.IpRange{{CidrIp: r.CidrIp}}}
		}
		for _, g := range perm.UserIdGroupPairs {
			have[fmt.Sprintf("%d group %s", aws.ToInt32(perm.FromPort), aws.ToString(g.GroupId))] = ec2types.IpPermission{IpProtocol: perm.IpProtocol,
				FromPort: perm.FromPort, ToPort: perm.ToPort, UserIdGroupPairs: []ec2types.UserIdGroupPair{{GroupId: g.GroupId}}}
		}
	}
	var add []rule
	keep := map[string]bool{}
	for _, r := range want {
		k := fmt.Sprintf("%d %s", r.port, r.from)
		keep[k] = true
		if _, ok := have[k]; !ok {
			add = append(add, r)
		}
	}
	if err := p.authorize(ctx, id, add); err != nil {
		return err
	}
	var revoke []ec2types.IpPermission
	for k, perm := range have {
		if !keep[k] {
			revoke = append(revoke, perm)
		}
	}
	if len(revoke) == 0 {
		return nil
	}
	_, err = p.ec2.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(id), IpPermissions: revoke})
	return awsUserError("revoke old rules of security group "+id, err)
}

// rootDevices are the root device names of the images hoist knows, so
// that the encrypted root disk needs no DescribeImages.
var rootDevices = map[string]string{"debian-12": "/dev/xvda", "ubuntu-24.04": "/dev/sda1", "ubuntu-22.04": "/dev/sda1"}

// image returns the AMI to boot and its root device name.
func (p *awsProvider) image(ctx context.Context) (string, string, error) {
	ami := p.spec.Image
	if param := ImageParameter(p.spec.Image, p.spec.InstanceType); param != "" {
		out, err := p.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(param)})
		if err != nil {
			return "", "", awsUserError("look up the current "+p.spec.Image+" image ("+param+")", err)
		}
		ami = aws.ToString(out.Parameter.Value)
	}
	if dev, ok := rootDevices[p.spec.Image]; ok {
		return ami, dev, nil
	}
	out, err := p.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{ami}})
	if err != nil {
		return "", "", awsUserError("describe image "+ami, err)
	}
	if len(out.Images) == 0 {
		return "", "", awsUserError("describe image "+ami, fmt.Errorf("no such image in %s", p.spec.Region))
	}
	return ami, aws.ToString(out.Images[0].RootDeviceName), nil
}

func (p *awsProvider) createInstance(ctx context.Context, r Resource, env ApplyEnv) error {
	ami, dev, err := p.image(ctx)
	if err != nil {
		return err
	}
	i := hostIndex(r.Name)
	zone := p.spec.Zone(i)
	ud, err := env.UserData(ctx, r.Name)
	if err != nil {
		return err
	}
	// The token makes a repeated call (after a cut connection) return the
	// same instance instead of a second one.
	sum := sha256.Sum256(append([]byte(p.spec.App+"/"+p.spec.Env+"/"+r.Name+"/"), ud...))
	extra := map[string]string{TagProps: r.Props}
	out, err := p.ec2.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(ami), InstanceType: ec2types.InstanceType(p.spec.InstanceType),
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		ClientToken:      aws.String(hex.EncodeToString(sum[:16])),
		SubnetId:         aws.String(p.found.ids[subnetRole(zone)]),
		SecurityGroupIds: []string{p.found.ids[roleHostsSG]},
		UserData:         aws.String(base64.StdEncoding.EncodeToString(ud)),
		MetadataOptions: &ec2types.InstanceMetadataOptionsRequest{HttpTokens: ec2types.HttpTokensStateRequired,
			HttpEndpoint: ec2types.InstanceMetadataEndpointStateEnabled, HttpPutResponseHopLimit: aws.Int32(1)},
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String(dev), Ebs: &ec2types.EbsBlockDevice{
			VolumeSize: aws.Int32(int32(p.spec.DiskGB)), VolumeType: ec2types.VolumeTypeGp3, Encrypted: aws.Bool(true), DeleteOnTermination: aws.Bool(true)}}},
		TagSpecifications: append(p.tagSpec(ec2types.ResourceTypeInstance, r.Name, extra), p.tagSpec(ec2types.ResourceTypeVolume, r.Name, nil)...),
	})
	if err != nil {
		return awsUserError("start instance "+r.Name, err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	if err := p.tag(ctx, id, r.Name, extra); err != nil {
		return err
	}
	return p.until(ctx, r.Name+" running", func() error {
		out, err := p.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if notFound(err) {
			return errNotYet // AWS may not list a new instance at once
		}
		if err != nil {
			return awsUserError("describe instance "+id, err)
		}
		for _, res := range out.Reservations {
			for _, in := range res.Instances {
				if in.State != nil && in.State.Name == ec2types.InstanceStateNameRunning {
					return nil
				}
			}
		}
		return errNotYet
	})
}

func hostIndex(name string) int {
	var i int
	fmt.Sscanf(name[strings.LastIndexByte(name, '-')+1:], "%d", &i)
	return i
}

// awsName is a name for ELB resources: at most 32 letters, digits and
// dashes.
func (p *awsProvider) awsName() string {
	n := p.spec.App + "-" + p.spec.Env
	if len(n) <= 32 {
		return n
	}
	sum := sha256.Sum256([]byte(n))
	return strings.TrimRight(n[:27], "-") + "-" + hex.EncodeToString(sum[:2])
}

func (p *awsProvider) elbTagList(role string) []elbtypes.Tag {
	var out []elbtypes.Tag
	for _, t := range p.ec2Tags(role, nil) {
		out = append(out, elbtypes.Tag{Key: t.Key, Value: t.Value})
	}
	return out
}

func (p *awsProvider) createCert(ctx context.Context) error {
	names := p.spec.Names
	var tags []acmtypes.Tag
	for _, t := range p.ec2Tags(roleCert, nil) {
		tags = append(tags, acmtypes.Tag{Key: t.Key, Value: t.Value})
	}
	sum := sha256.Sum256([]byte(p.spec.App + "/" + p.spec.Env + "/" + strings.Join(names, ",")))
	in := &acm.RequestCertificateInput{DomainName: aws.String(names[0]), ValidationMethod: acmtypes.ValidationMethodDns,
		IdempotencyToken: aws.String(hex.EncodeToString(sum[:16])), Tags: tags}
	if len(names) > 1 {
		in.SubjectAlternativeNames = names[1:]
	}
	out, err := p.acm.RequestCertificate(ctx, in)
	if err != nil {
		return awsUserError("request a certificate for "+strings.Join(names, ", "), err)
	}
	arn := aws.ToString(out.CertificateArn)
	p.found.ids[roleCert], p.requestedCert = arn, arn
	// The VPC's tag is how hoist finds the certificate again.
	if err := p.tag(ctx, p.found.ids[roleVPC], roleVPC, map[string]string{TagCertificate: arn}); err != nil {
		return err
	}
	p.awaitValidation(ctx, arn)
	return nil
}

// awaitValidation tells the user, as soon as ACM says it, which DNS
// records it waits for, without waiting for the rest of provision to
// succeed: ACM fills them in a few seconds after the request.
func (p *awsProvider) awaitValidation(ctx context.Context, arn string) {
	ctx, cancel := context.WithTimeout(ctx, 10*p.o.Poll)
	defer cancel()
	for {
		inv := &Inventory{}
		if err := p.observeCert(ctx, inv, arn); err == nil && len(p.found.validation) > 0 {
			p.printValidation()
			return
		}
		select {
		case <-ctx.Done():
			p.logf("ACM has not said yet which DNS records prove %s; hoist provision prints them when run again", strings.Join(p.spec.Names, ", "))
			return
		case <-time.After(p.o.Poll):
		}
	}
}

// printValidation tells the user the DNS records ACM waits for.
func (p *awsProvider) printValidation() {
	for _, v := range p.found.validation {
		p.logf("certificate for %s: ACM issues it once this record exists: %s %s %s", v.Domain, v.Name, v.Type, v.Value)
	}
}

func (p *awsProvider) createTargets(ctx context.Context) error {
	out, err := p.elb.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{
		Name: aws.String(p.awsName()), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(int32(p.spec.TargetPort)),
		VpcId: aws.String(p.found.ids[roleVPC]), TargetType: elbtypes.TargetTypeEnumInstance,
		HealthCheckProtocol: elbtypes.ProtocolEnumHttp, HealthCheckPath: aws.String(p.spec.HealthPath),
		Matcher: &elbtypes.Matcher{HttpCode: aws.String("200-299")}, Tags: p.elbTagList(roleTargets),
	})
	if err != nil {
		return awsUserError("create the target group", err)
	}
	p.found.ids[roleTargets] = aws.ToString(out.TargetGroups[0].TargetGroupArn)
	return nil
}

func (p *awsProvider) createBalancer(ctx context.Context) error {
	var subnets []string
	for _, z := range p.spec.Zones {
		subnets = append(subnets, p.found.ids[subnetRole(z)])
	}
	out, err := p.elb.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{
		Name: aws.String(p.awsName()), Subnets: subnets, SecurityGroups: []string{p.found.ids[roleBalancerSG]},
		Scheme: elbtypes.LoadBalancerSchemeEnumInternetFacing, Type: elbtypes.LoadBalancerTypeEnumApplication,
		IpAddressType: elbtypes.IpAddressTypeIpv4, Tags: p.elbTagList(roleBalancer),
	})
	if err != nil {
		return awsUserError("create the load balancer", err)
	}
	p.found.ids[roleBalancer] = aws.ToString(out.LoadBalancers[0].LoadBalancerArn)
	return nil
}

func (p *awsProvider) createListener(ctx context.Context, role string) error {
	in := &elb.CreateListenerInput{LoadBalancerArn: aws.String(p.found.ids[roleBalancer])}
	if role == roleHTTP {
		in.Port, in.Protocol = aws.Int32(80), elbtypes.ProtocolEnumHttp
		in.DefaultActions = []elbtypes.Action{{Type: elbtypes.ActionTypeEnumRedirect, RedirectConfig: &elbtypes.RedirectActionConfig{
			Protocol: aws.String("HTTPS"), Port: aws.String("443"), StatusCode: elbtypes.RedirectActionStatusCodeEnumHttp301}}}
	} else {
		cert, ok := p.listenerCert()
		if !ok {
			p.logf("the HTTPS listener waits for certificate %s, which ACM issues once its DNS records exist; run hoist provision again then", cert)
			p.printValidation()
			return nil
		}
		in.Port, in.Protocol = aws.Int32(443), elbtypes.ProtocolEnumHttps
		in.SslPolicy = aws.String("ELBSecurityPolicy-TLS13-1-2-2021-06")
		in.Certificates = []elbtypes.Certificate{{CertificateArn: aws.String(cert)}}
		in.DefaultActions = []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(p.found.ids[roleTargets])}}
	}
	in.Tags = p.elbTagList(role)
	if len(in.Certificates) > 0 {
		in.Tags = append(in.Tags, elbtypes.Tag{Key: aws.String(TagCertificate), Value: in.Certificates[0].CertificateArn})
	}
	out, err := p.elb.CreateListener(ctx, in)
	if err != nil {
		return awsUserError("create the "+role+" listener", err)
	}
	p.found.ids["listener-"+role] = aws.ToString(out.Listeners[0].ListenerArn)
	return nil
}

// listenerCert is the certificate the HTTPS listener uses, and whether
// it can be used yet: one hoist requested must be issued first.
func (p *awsProvider) listenerCert() (string, bool) {
	if p.spec.Certificate != "" {
		return p.spec.Certificate, true
	}
	arn := p.found.ids[roleCert]
	if p.found.certStatus == "" || p.found.certStatus == string(acmtypes.CertificateStatusIssued) {
		return arn, p.found.certStatus != "" || p.refreshCert(arn)
	}
	return arn, false
}

// refreshCert reads a just-requested certificate's status.
func (p *awsProvider) refreshCert(arn string) bool {
	out, err := p.acm.DescribeCertificate(context.Background(), &acm.DescribeCertificateInput{CertificateArn: aws.String(arn)})
	return err == nil && out.Certificate.Status == acmtypes.CertificateStatusIssued
}

func (p *awsProvider) register(ctx context.Context) error {
	var targets []elbtypes.TargetDescription
	for _, n := range p.hostNames() {
		targets = append(targets, elbtypes.TargetDescription{Id: aws.String(p.found.ids[n]), Port: aws.Int32(int32(p.spec.TargetPort))})
	}
	_, err := p.elb.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(p.found.ids[roleTargets]), Targets: targets})
	return awsUserError("register the hosts with the balancer", err)
}

func (p *awsProvider) update(ctx context.Context, r Resource) error {
	p.logf("updating %s %s", r.Kind, r.Name)
	switch r.Kind {
	case kindSG:
		return p.updateSG(ctx, r.Name)
	case kindListener:
		cert, ok := p.listenerCert()
		if !ok {
			return nil
		}
		arn := p.found.ids["listener-"+r.Name]
		if _, err := p.elb.ModifyListener(ctx, &elb.ModifyListenerInput{ListenerArn: aws.String(arn),
			Certificates: []elbtypes.Certificate{{CertificateArn: aws.String(cert)}}}); err != nil {
			return awsUserError("change the HTTPS listener's certificate", err)
		}
		_, err := p.elb.AddTags(ctx, &elb.AddTagsInput{ResourceArns: []string{arn}, Tags: []elbtypes.Tag{{Key: aws.String(TagCertificate), Value: aws.String(cert)}}})
		return awsUserError("tag the HTTPS listener", err)
	case kindRegistrar:
		if err := p.deregister(ctx); err != nil {
			return err
		}
		return p.register(ctx)
	}
	return fmt.Errorf("aws: cannot update a %s", r.Kind)
}

func (p *awsProvider) deregister(ctx context.Context) error {
	tg := p.found.ids[roleTargets]
	out, err := p.elb.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(tg)})
	if err != nil {
		return awsUserError("list the balancer's targets", err)
	}
	var targets []elbtypes.TargetDescription
	for _, d := range out.TargetHealthDescriptions {
		targets = append(targets, *d.Target)
	}
	if len(targets) == 0 {
		return nil
	}
	_, err = p.elb.DeregisterTargets(ctx, &elb.DeregisterTargetsInput{TargetGroupArn: aws.String(tg), Targets: targets})
	return awsUserError("deregister hosts from the balancer", err)
}

// remove deletes one resource, waiting where AWS releases what it uses
// only after a while (an instance's network interface, a balancer's).
func (p *awsProvider) remove(ctx context.Context, r Resource) error {
	p.logf("deleting %s %s %s", r.Kind, r.Name, r.ID)
	id := r.ID
	switch r.Kind {
	case kindRegistrar:
		return p.deregister(ctx)
	case kindListener:
		_, err := p.elb.DeleteListener(ctx, &elb.DeleteListenerInput{ListenerArn: aws.String(id)})
		return ignoreNotFound(awsUserError("delete the "+r.Name+" listener", err), err)
	case kindBalancer:
		if _, err := p.elb.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(id)}); err != nil && !notFound(err) {
			return awsUserError("delete the load balancer", err)
		}
		return p.until(ctx, "the load balancer gone", func() error {
			out, err := p.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerArns: []string{id}})
			if notFound(err) || (err == nil && len(out.LoadBalancers) == 0) {
				return nil
			}
			if err != nil {
				return awsUserError("describe the load balancer", err)
			}
			return errNotYet
		})
	case kindTargets:
		return p.retryDependency(ctx, "delete the target group", func() error {
			_, err := p.elb.DeleteTargetGroup(ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: aws.String(id)})
			return err
		})
	case kindCert:
		return p.retryDependency(ctx, "delete the certificate", func() error {
			_, err := p.acm.DeleteCertificate(ctx, &acm.DeleteCertificateInput{CertificateArn: aws.String(id)})
			return err
		})
	case kindInstance:
		if _, err := p.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil && !notFound(err) {
			return awsUserError("terminate instance "+r.Name, err)
		}
		return p.until(ctx, r.Name+" terminated", func() error {
			out, err := p.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
			if notFound(err) {
				return nil
			}
			if err != nil {
				return awsUserError("describe instance "+id, err)
			}
			for _, res := range out.Reservations {
				for _, in := range res.Instances {
					if in.State == nil || in.State.Name != ec2types.InstanceStateNameTerminated {
						return errNotYet
					}
				}
			}
			return nil
		})
	case kindSG:
		return p.retryDependency(ctx, "delete security group "+r.Name, func() error {
			_, err := p.ec2.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(id)})
			return err
		})
	case kindSubnet:
		return p.retryDependency(ctx, "delete "+r.Name, func() error {
			_, err := p.ec2.DeleteSubnet(ctx, &ec2.DeleteSubnetInput{SubnetId: aws.String(id)})
			return err
		})
	case kindGateway:
		if vpc := p.found.ids[roleVPC]; vpc != "" {
			_, err := p.ec2.DetachInternetGateway(ctx, &ec2.DetachInternetGatewayInput{InternetGatewayId: aws.String(id), VpcId: aws.String(vpc)})
			if err != nil && !notFound(err) && errorCode(err) != "Gateway.NotAttached" {
				return awsUserError("detach the internet gateway", err)
			}
		}
		return p.retryDependency(ctx, "delete the internet gateway", func() error {
			_, err := p.ec2.DeleteInternetGateway(ctx, &ec2.DeleteInternetGatewayInput{InternetGatewayId: aws.String(id)})
			return err
		})
	case kindVPC:
		return p.retryDependency(ctx, "delete the VPC", func() error {
			_, err := p.ec2.DeleteVpc(ctx, &ec2.DeleteVpcInput{VpcId: aws.String(id)})
			return err
		})
	}
	return fmt.Errorf("aws: cannot delete a %s", r.Kind)
}

func ignoreNotFound(wrapped, err error) error {
	if err == nil || notFound(err) {
		return nil
	}
	return wrapped
}

// retryDependency runs a delete until what still uses the resource lets
// go of it: AWS answers DependencyViolation or ResourceInUse meanwhile,
// and says to try again later. Gone already counts as done.
func (p *awsProvider) retryDependency(ctx context.Context, what string, del func() error) error {
	return p.until(ctx, what, func() error {
		err := del()
		switch {
		case err == nil || notFound(err):
			return nil
		case inUse(err):
			return errNotYet
		}
		return awsUserError(what, err)
	})
}

func inUse(err error) bool {
	switch errorCode(err) {
	case "DependencyViolation", "ResourceInUse", "ResourceInUseException", "InvalidGroup.InUse":
		return true
	}
	return false
}

// until calls check every Poll until it returns nil or an error other
// than errNotYet, for at most Wait.
func (p *awsProvider) until(ctx context.Context, what string, check func() error) error {
	deadline := time.Now().Add(p.o.Wait)
	for {
		err := check()
		if !errors.Is(err, errNotYet) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("aws: waited %s for %s", p.o.Wait, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(p.o.Poll):
		}
	}
}
