package pipeline

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"gonum.org/v1/gonum/blas/blas32"

	"github.com/recpipeline/recpipeline/runtime/ann"
	"github.com/recpipeline/recpipeline/runtime/catalog"
	"github.com/recpipeline/recpipeline/runtime/features"
	"github.com/recpipeline/recpipeline/runtime/model"
	"github.com/recpipeline/recpipeline/runtime/store"
)

// vectorChunk rows of item embeddings share one allocation.
const vectorChunk = 4096

// vectors holds one two-tower model's item embeddings by catalog ordinal.
// Readers take no lock: they load the chunk list and the published length;
// appends (new items) are serialised by the engine.
type vectors struct {
	dim    int
	chunks atomic.Pointer[[][]float32]
	n      atomic.Uint32
}

func newVectors(dim int) *vectors {
	v := &vectors{dim: dim}
	empty := [][]float32{}
	v.chunks.Store(&empty)
	return v
}

// Vector returns item's embedding, or nil if it has none yet.
func (v *vectors) Vector(item uint32) []float32 {
	if item >= v.n.Load() {
		return nil
	}
	chunks := *v.chunks.Load()
	off := int(item%vectorChunk) * v.dim
	return chunks[item/vectorChunk][off : off+v.dim : off+v.dim]
}

// append adds the embeddings (rows × dim, row-major) of the next items.
func (v *vectors) append(rows []float32) {
	n := v.n.Load()
	chunks := *v.chunks.Load()
	for len(rows) > 0 {
		if int(n/vectorChunk) == len(chunks) {
			grown := append(append([][]float32(nil), chunks...), make([]float32, vectorChunk*v.dim))
			v.chunks.Store(&grown)
			chunks = grown
		}
		off := int(n%vectorChunk) * v.dim
		k := copy(chunks[n/vectorChunk][off:], rows)
		rows = rows[k:]
		n += uint32(k / v.dim)
	}
	v.n.Store(n)
}

// tower is a loaded two-tower model with what serving it needs: feature
// assemblers for both towers, the item embeddings of the whole catalog and,
// when a source searches it, an HNSW index over them.
type tower struct {
	name    string
	model   *model.TwoTower
	user    *features.Assembler
	item    *features.Assembler
	vectors *vectors
	index   *ann.Index // nil unless an ANN source uses the model
	pool    sync.Pool  // *model.Workspace
}

// itemBatch is how many items go through the item tower at once at load.
const itemBatch = 1024

func newTower(name string, a *model.Artifact, cat *catalog.Catalog) (*tower, error) {
	if a.TwoTower == nil {
		return nil, fmt.Errorf("model %q is a %s model, not TwoTower", name, a.Manifest.Kind)
	}
	user, err := features.CompileUser(a.Manifest.Networks[model.NetUser].Input, cat, a.Embeddings)
	if err != nil {
		return nil, fmt.Errorf("model %q, user tower: %w", name, err)
	}
	// The item tower's outputs are computed once per item and kept, so it
	// may read only what does not change with the request; its item_id
	// block reads the artifact's embedding table.
	item, err := features.CompileItem(a.Manifest.Networks[model.NetItem].Input, cat, a.Embeddings)
	if err != nil {
		return nil, fmt.Errorf("model %q, item tower: %w", name, err)
	}
	return &tower{name: name, model: a.TwoTower, user: user, item: item, vectors: newVectors(a.TwoTower.Dim)}, nil
}

func (t *tower) workspace() *model.Workspace {
	if ws, ok := t.pool.Get().(*model.Workspace); ok {
		return ws
	}
	return &model.Workspace{}
}

// embedItems computes the item embeddings of ordinals [from, to) and
// appends them, using every core.
func (t *tower) embedItems(ctx context.Context, cat *catalog.Catalog, from, to int) error {
	n := to - from
	if n <= 0 {
		return nil
	}
	out := make([]float32, n*t.model.Dim)
	workers := min(runtime.GOMAXPROCS(0), (n+itemBatch-1)/itemBatch)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	now := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws := &model.Workspace{}
			uc := features.NewUserContext("", now, cat, nil, nil)
			in := blas32.General{Rows: itemBatch, Cols: t.item.Width(), Stride: t.item.Width(), Data: make([]float32, itemBatch*t.item.Width())}
			items := make([]uint32, 0, itemBatch)
			for ctx.Err() == nil {
				start := int(next.Add(itemBatch)) - itemBatch
				if start >= n {
					return
				}
				end := min(start+itemBatch, n)
				items = items[:0]
				for i := start; i < end; i++ {
					items = append(items, uint32(from+i))
				}
				batch := in
				batch.Rows = len(items)
				t.item.Fill(uc, items, batch)
				e := t.model.ItemEmbeddings(batch, ws)
				for r := 0; r < e.Rows; r++ {
					copy(out[(start+r)*t.model.Dim:(start+r+1)*t.model.Dim], e.Data[r*e.Stride:r*e.Stride+t.model.Dim])
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	t.vectors.append(out)
	return nil
}

// buildIndex indexes every embedded item.
func (t *tower) buildIndex(ctx context.Context, opts ann.Options) error {
	n := int(t.vectors.n.Load())
	flat := make([]float32, 0, n*t.model.Dim)
	for i := 0; i < n; i++ {
		flat = append(flat, t.vectors.Vector(uint32(i))...)
	}
	t.index = ann.New(t.model.Dim, ann.InnerProduct, opts)
	t.index.Reserve(n)
	return t.index.Build(ctx, nil, flat, runtime.GOMAXPROCS(0))
}

// userEmbedding runs the user tower for one user into dst.
func (t *tower) userEmbedding(uc *features.UserContext, dst []float32) []float32 {
	ws := t.workspace()
	defer t.pool.Put(ws)
	in := make([]float32, t.user.Width())
	t.user.FillUser(uc, in)
	e := t.model.UserEmbeddings(blas32.General{Rows: 1, Cols: len(in), Stride: len(in), Data: in}, ws)
	return append(dst[:0], e.Data[:t.model.Dim]...)
}

// embedder adapts a tower to the sources' UserEmbedder: it reads the user's
// state from the store.
type embedder struct {
	t     *tower
	cat   *catalog.Catalog
	state userReader
}

func (e *embedder) EmbedUser(ctx context.Context, user string, now time.Time, dst []float32) ([]float32, error) {
	uc, err := userContext(ctx, e.state, e.cat, user, now)
	if err != nil {
		return nil, err
	}
	return e.t.userEmbedding(uc, dst), nil
}

// userReader reads a user's state: the store, or what a stage call carries.
type userReader interface {
	RecentEngagements(ctx context.Context, user string, limit int) ([]store.Engagement, error)
	Follows(ctx context.Context, user string) ([]string, error)
}

// userContext reads what the feature blocks need of a user.
func userContext(ctx context.Context, st userReader, cat *catalog.Catalog, user string, now time.Time) (*features.UserContext, error) {
	engagements, err := st.RecentEngagements(ctx, user, features.PoolSize)
	if err != nil {
		return nil, fmt.Errorf("failed to read recent engagements: %w", err)
	}
	follows, err := st.Follows(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("failed to read follows: %w", err)
	}
	return features.NewUserContext(user, now, cat, engagements, follows), nil
}
