package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// found is what Observe learnt that Apply needs: ids by role.
type found struct {
	ids        map[string]string // role -> id (ARN for ELB)
	lbDNS      string
	certStatus string
	validation []ValidationRecord
}

// TagProps holds, on instances, the properties they were made with: the
// image name and disk size are not all readable back.
const TagProps = "hoist:props"

// Observe finds the app's resources by their tags: EC2's by DescribeTags
// on the app's tag, the balancer's and target group's by their ELB tags;
// listeners and registrations through the balancer found so.
func (p *awsProvider) Observe(ctx context.Context) (*Inventory, error) {
	p.found = found{ids: map[string]string{}}
	inv := &Inventory{}
	tagged, err := p.taggedEC2(ctx)
	if err != nil {
		return nil, err
	}
	for id, tags := range tagged {
		if err := p.observeEC2(ctx, inv, id, tags); err != nil {
			return nil, err
		}
	}
	if err := p.observeELB(ctx, inv); err != nil {
		return nil, err
	}
	sortResources(inv.Resources)
	slices.SortFunc(inv.Hosts, func(a, b Host) int { return strings.Compare(a.Name, b.Name) })
	return inv, nil
}

// taggedEC2 returns the EC2 resources tagged for the app and env, with
// their tags. The filter on the tag key is done by AWS; the values are
// checked here too.
func (p *awsProvider) taggedEC2(ctx context.Context) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	pager := ec2.NewDescribeTagsPaginator(p.ec2, &ec2.DescribeTagsInput{Filters: []ec2types.Filter{
		{Name: aws.String("key"), Values: []string{TagApp}},
		{Name: aws.String("value"), Values: []string{p.spec.App}},
	}})
	var ids []string
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, awsUserError("list the app's resources", err)
		}
		for _, t := range page.Tags {
			if aws.ToString(t.Key) == TagApp && aws.ToString(t.Value) == p.spec.App {
				ids = append(ids, aws.ToString(t.ResourceId))
			}
		}
	}
	if len(ids) == 0 {
		return out, nil
	}
	pager = ec2.NewDescribeTagsPaginator(p.ec2, &ec2.DescribeTagsInput{Filters: []ec2types.Filter{
		{Name: aws.String("resource-id"), Values: ids},
	}})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, awsUserError("read the app's tags", err)
		}
		for _, t := range page.Tags {
			id := aws.ToString(t.ResourceId)
			if out[id] == nil {
				out[id] = map[string]string{}
			}
			out[id][aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	for id, tags := range out {
		if !ours(tags, p.spec) {
			delete(out, id)
		}
	}
	return out, nil
}

func (p *awsProvider) observeEC2(ctx context.Context, inv *Inventory, id string, tags map[string]string) error {
	role := tags[TagRole]
	add := func(kind, props string) {
		p.found.ids[role] = id
		inv.Resources = append(inv.Resources, Resource{Kind: kind, Name: role, ID: id, Props: props})
	}
	switch {
	case strings.HasPrefix(id, "vpc-"):
		out, err := p.ec2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{id}})
		if notFound(err) || (err == nil && len(out.Vpcs) == 0) {
			return nil
		}
		if err != nil {
			return awsUserError("describe the VPC", err)
		}
		add(kindVPC, aws.ToString(out.Vpcs[0].CidrBlock)+", DNS host names on")
		if arn := tags[TagCertificate]; arn != "" {
			if err := p.observeCert(ctx, inv, arn); err != nil {
				return err
			}
		}
	case strings.HasPrefix(id, "igw-"):
		out, err := p.ec2.DescribeInternetGateways(ctx, &ec2.DescribeInternetGatewaysInput{InternetGatewayIds: []string{id}})
		if notFound(err) || (err == nil && len(out.InternetGateways) == 0) {
			return nil
		}
		if err != nil {
			return awsUserError("describe the internet gateway", err)
		}
		props := "detached"
		if len(out.InternetGateways[0].Attachments) > 0 {
			props = "attached, default route in the main route table"
		}
		add(kindGateway, props)
	case strings.HasPrefix(id, "subnet-"):
		out, err := p.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{id}})
		if notFound(err) || (err == nil && len(out.Subnets) == 0) {
			return nil
		}
		if err != nil {
			return awsUserError("describe a subnet", err)
		}
		sn := out.Subnets[0]
		add(kindSubnet, fmt.Sprintf("%s in %s, public addresses on launch", aws.ToString(sn.CidrBlock), aws.ToString(sn.AvailabilityZone)))
	case strings.HasPrefix(id, "sg-"):
		out, err := p.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{id}})
		if notFound(err) || (err == nil && len(out.SecurityGroups) == 0) {
			return nil
		}
		if err != nil {
			return awsUserError("describe a security group", err)
		}
		var rs []rule
		for _, perm := range out.SecurityGroups[0].IpPermissions {
			for _, r := range perm.IpRanges {
				rs = append(rs, rule{port: aws.ToInt32(perm.FromPort), from: aws.ToString(r.CidrIp)})
			}
			for _, g := range perm.UserIdGroupPairs {
				rs = append(rs, rule{port: aws.ToInt32(perm.FromPort), from: "group " + aws.ToString(g.GroupId)})
			}
		}
		p.found.ids[role] = id
		inv.Resources = append(inv.Resources, Resource{Kind: kindSG, Name: role, ID: id, Props: rulesProps(rs), Mutable: true})
	case strings.HasPrefix(id, "i-"):
		out, err := p.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if notFound(err) {
			return nil
		}
		if err != nil {
			return awsUserError("describe an instance", err)
		}
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				if in.State != nil && (in.State.Name == ec2types.InstanceStateNameTerminated || in.State.Name == ec2types.InstanceStateNameShuttingDown) {
					continue
				}
				add(kindInstance, tags[TagProps])
				zone := ""
				if in.Placement != nil {
					zone = aws.ToString(in.Placement.AvailabilityZone)
				}
				inv.Hosts = append(inv.Hosts, Host{Name: role, ID: id, Zone: zone,
					PublicAddr: aws.ToString(in.PublicIpAddress), PrivateAddr: aws.ToString(in.PrivateIpAddress)})
			}
		}
	}
	return nil
}

func (p *awsProvider) observeCert(ctx context.Context, inv *Inventory, arn string) error {
	out, err := p.acm.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: aws.String(arn)})
	if notFound(err) {
		return nil
	}
	if err != nil {
		return awsUserError("describe the certificate", err)
	}
	c := out.Certificate
	p.requestedCert = arn
	p.found.ids[roleCert] = arn
	p.found.certStatus = string(c.Status)
	var names []string
	names = append(names, aws.ToString(c.DomainName))
	for _, n := range c.SubjectAlternativeNames {
		if n != aws.ToString(c.DomainName) {
			names = append(names, n)
		}
	}
	p.found.validation = nil
	for _, dv := range c.DomainValidationOptions {
		if rr := dv.ResourceRecord; rr != nil {
			p.found.validation = append(p.found.validation, ValidationRecord{Domain: aws.ToString(dv.DomainName),
				Name: aws.ToString(rr.Name), Type: string(rr.Type), Value: aws.ToString(rr.Value)})
		}
	}
	inv.Resources = append(inv.Resources, Resource{Kind: kindCert, Name: roleCert, ID: arn, Props: certProps(names)})
	return nil
}

// observeELB finds the balancer and target group by their tags, and
// the listeners and registrations that hang off them.
func (p *awsProvider) observeELB(ctx context.Context, inv *Inventory) error {
	var lbs []elbtypes.LoadBalancer
	lbPager := elb.NewDescribeLoadBalancersPaginator(p.elb, &elb.DescribeLoadBalancersInput{})
	for lbPager.HasMorePages() {
		page, err := lbPager.NextPage(ctx)
		if err != nil {
			return awsUserError("list load balancers", err)
		}
		lbs = append(lbs, page.LoadBalancers...)
	}
	var tgs []elbtypes.TargetGroup
	tgPager := elb.NewDescribeTargetGroupsPaginator(p.elb, &elb.DescribeTargetGroupsInput{})
	for tgPager.HasMorePages() {
		page, err := tgPager.NextPage(ctx)
		if err != nil {
			return awsUserError("list target groups", err)
		}
		tgs = append(tgs, page.TargetGroups...)
	}
	var arns []string
	for _, lb := range lbs {
		arns = append(arns, aws.ToString(lb.LoadBalancerArn))
	}
	for _, tg := range tgs {
		arns = append(arns, aws.ToString(tg.TargetGroupArn))
	}
	tags, err := p.elbTags(ctx, arns)
	if err != nil {
		return err
	}
	for _, tg := range tgs {
		arn := aws.ToString(tg.TargetGroupArn)
		if !ours(tags[arn], p.spec) {
			continue
		}
		p.found.ids[roleTargets] = arn
		hc := aws.ToString(tg.HealthCheckPath)
		inv.Resources = append(inv.Resources, Resource{Kind: kindTargets, Name: roleTargets, ID: arn,
			Props: fmt.Sprintf("%s:%d, health GET %s", tg.Protocol, aws.ToInt32(tg.Port), hc)})
		if err := p.observeTargets(ctx, inv, arn); err != nil {
			return err
		}
	}
	for _, lb := range lbs {
		arn := aws.ToString(lb.LoadBalancerArn)
		if !ours(tags[arn], p.spec) {
			continue
		}
		p.found.ids[roleBalancer] = arn
		p.found.lbDNS = aws.ToString(lb.DNSName)
		var zones []string
		for _, az := range lb.AvailabilityZones {
			zones = append(zones, aws.ToString(az.ZoneName))
		}
		slices.Sort(zones)
		inv.Resources = append(inv.Resources, Resource{Kind: kindBalancer, Name: roleBalancer, ID: arn,
			Props: "internet-facing application balancer in " + strings.Join(zones, ", ")})
		inv.Balancer = &Balancer{Name: aws.ToString(lb.LoadBalancerName), ID: arn, DNSName: p.found.lbDNS,
			CertificateID: p.requestedCert, Validation: p.found.validation}
		if err := p.observeListeners(ctx, inv, arn); err != nil {
			return err
		}
	}
	return nil
}

func (p *awsProvider) elbTags(ctx context.Context, arns []string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for i := 0; i < len(arns); i += 20 { // DescribeTags takes at most 20
		page, err := p.elb.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: arns[i:min(i+20, len(arns))]})
		if err != nil {
			return nil, awsUserError("read load balancer tags", err)
		}
		for _, d := range page.TagDescriptions {
			m := map[string]string{}
			for _, t := range d.Tags {
				m[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			out[aws.ToString(d.ResourceArn)] = m
		}
	}
	return out, nil
}

func (p *awsProvider) observeListeners(ctx context.Context, inv *Inventory, lbARN string) error {
	out, err := p.elb.DescribeListeners(ctx, &elb.DescribeListenersInput{LoadBalancerArn: aws.String(lbARN)})
	if err != nil {
		return awsUserError("list the balancer's listeners", err)
	}
	for _, l := range out.Listeners {
		arn := aws.ToString(l.ListenerArn)
		switch aws.ToInt32(l.Port) {
		case 80:
			p.found.ids["listener-"+roleHTTP] = arn
			inv.Resources = append(inv.Resources, Resource{Kind: kindListener, Name: roleHTTP, ID: arn, Props: "80 redirects to HTTPS"})
		case 443:
			cert := ""
			if len(l.Certificates) > 0 {
				cert = aws.ToString(l.Certificates[0].CertificateArn)
			} else if tags, err := p.elbTags(ctx, []string{arn}); err == nil {
				// Where the listener's description lacks its certificate
				// (an emulator), the one hoist set is in its tag.
				cert = tags[arn][TagCertificate]
			}
			p.found.ids["listener-"+roleHTTPS] = arn
			inv.Resources = append(inv.Resources, Resource{Kind: kindListener, Name: roleHTTPS, ID: arn,
				Props: "443 forwards to the targets with " + p.certName(cert), Mutable: true})
		}
	}
	return nil
}

func (p *awsProvider) observeTargets(ctx context.Context, inv *Inventory, tgARN string) error {
	out, err := p.elb.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(tgARN)})
	if err != nil {
		return awsUserError("list the balancer's targets", err)
	}
	names := map[string]string{}
	for role, id := range p.found.ids {
		names[id] = role
	}
	var hosts []string
	for _, d := range out.TargetHealthDescriptions {
		id := aws.ToString(d.Target.Id)
		if n := names[id]; n != "" {
			hosts = append(hosts, n)
		} else {
			hosts = append(hosts, id)
		}
	}
	if len(hosts) == 0 {
		return nil
	}
	slices.Sort(hosts)
	inv.Resources = append(inv.Resources, Resource{Kind: kindRegistrar, Name: roleRegistered, ID: tgARN, Props: strings.Join(hosts, ", "), Mutable: true})
	return nil
}

// notFound reports whether err says a resource does not exist (any
// more): AWS's *.NotFound codes.
func notFound(err error) bool {
	code := errorCode(err)
	return code != "" && (strings.HasSuffix(code, "NotFound") || strings.HasSuffix(code, "NotFoundException") || code == "ResourceNotFoundException")
}

var errNotYet = errors.New("not yet")
