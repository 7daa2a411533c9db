package kafka

import (
	"fmt"
	"strings"
)

// TopicPlan is what EnsureTopics will do to the topics of a goka group,
// decided from what the cluster has before anything is created, so that a
// start that fails changes nothing.
type TopicPlan struct {
	Partitions int32    // of every topic of the group, existing or created
	Create     []string // the topics to create, in the order of Topics
}

// PlanTopics decides the partitions of the group's topics and which to
// create. existing holds the partition count of each topic the cluster
// has. Topics that exist fix the count, and must agree on it: goka reads
// partition p of the stream, the table and the loop topic together. The
// count asked applies where none exists; asked explicitly (-partitions)
// against an existing topic with another count, it is an error, not
// ignored. The errors say what to do.
func PlanTopics(topics Topics, existing map[string]int32, asked int32, explicit bool) (TopicPlan, error) {
	names := []string{topics.Stream, topics.Table, topics.Loop}
	var have []string
	for _, name := range names {
		if _, ok := existing[name]; ok {
			have = append(have, name)
		}
	}
	plan := TopicPlan{Partitions: asked}
	if len(have) > 0 {
		first := have[0]
		plan.Partitions = existing[first]
		for _, name := range have[1:] {
			if n := existing[name]; n != plan.Partitions {
				return TopicPlan{}, fmt.Errorf("topic %s has %d partitions and %s has %d, but goka reads them together and needs them equal: "+
					"delete the one whose records can go (kafka-topics.sh --delete --topic NAME); clicks creates it again with the other's partitions",
					first, plan.Partitions, name, n)
			}
		}
		if explicit && asked != plan.Partitions {
			return TopicPlan{}, fmt.Errorf("-partitions %d, but topic %s already has %d partitions: "+
				"leave -partitions out (the topics clicks creates follow the existing ones) or pass -partitions %d",
				asked, strings.Join(have, " and "), plan.Partitions, plan.Partitions)
		}
	}
	for _, name := range names {
		if _, ok := existing[name]; !ok {
			plan.Create = append(plan.Create, name)
		}
	}
	return plan, nil
}
