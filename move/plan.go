package move

import (
	"fmt"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Plan is one move: which region goes from which shard to which. The
// shards' admin DSNs (ShardConfig.AdminDSN) are what the move connects
// with: it creates publications, slots and subscriptions, which need a
// superuser on PostgreSQL 15.
type Plan struct {
	// ID is the move's id in control.moves; 0 before it is recorded.
	ID     int64
	Region regions.Code
	Source shardmap.ShardConfig
	Target shardmap.ShardConfig
}

// NamePrefix starts the name of every publication, replication slot and
// subscription a move creates, so that status can list the ones no
// recorded move owns and abort can remove them.
const NamePrefix = "dms_move_"

// Names are the replication objects of one move. The forward ones copy
// the region from the source to the target (the publication and the slot
// live on the source, the subscription on the target); the reverse ones
// carry the target's writes back to the source after the switch, for a
// rollback that loses none.
type Names struct {
	Publication, Slot, Subscription                      string
	ReversePublication, ReverseSlot, ReverseSubscription string
}

// Names returns the names of p's replication objects: NamePrefix, the
// move's id and the region, such as dms_move_7_r05 and dms_move_7_r05_back.
func (p Plan) Names() Names {
	fwd := fmt.Sprintf("%s%d_r%s", NamePrefix, p.ID, p.Region)
	back := fwd + "_back"
	return Names{
		Publication: fwd, Slot: fwd, Subscription: fwd,
		ReversePublication: back, ReverseSlot: back, ReverseSubscription: back,
	}
}
