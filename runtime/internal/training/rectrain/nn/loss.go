/*
Copyright 2026 The RecPipeline Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package nn

import (
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// BCEWithLogits returns scale·Σ_k BCE(σ(z_k), y_k), the binary cross-entropy
// of logits z against labels y in [0, 1], computed stably from the logits,
// and writes its gradient with respect to z to dz.
func BCEWithLogits(z, y, dz []float64, scale float64) float64 {
	var loss float64
	for k, v := range z {
		// log(1+e^v) - y·v, stable for both signs of v.
		loss += math.Max(v, 0) - y[k]*v + math.Log1p(math.Exp(-math.Abs(v)))
		dz[k] = scale * (Sigmoid(v) - y[k])
	}
	return scale * loss
}

// DotMSE returns scale·Σ_r (⟨u_r, v_r⟩ − target_r)², the squared error of the
// row-wise dot products of u and v (rows × d), and writes its gradients with
// respect to u and v to du and dv (same shapes).
func DotMSE(u, v blas64.General, target []float64, du, dv blas64.General, scale float64) float64 {
	var loss float64
	for r := 0; r < u.Rows; r++ {
		ur := u.Data[r*u.Stride : r*u.Stride+u.Cols]
		vr := v.Data[r*v.Stride : r*v.Stride+v.Cols]
		var s float64
		for k, x := range ur {
			s += x * vr[k]
		}
		e := s - target[r]
		loss += e * e
		g := 2 * scale * e
		dur := du.Data[r*du.Stride : r*du.Stride+du.Cols]
		dvr := dv.Data[r*dv.Stride : r*dv.Stride+dv.Cols]
		for k := range ur {
			dur[k] = g * vr[k]
			dvr[k] = g * ur[k]
		}
	}
	return scale * loss
}

// InBatchSoftmax is the sampled-softmax loss of a batch of positive pairs:
// row r of u (a user embedding) should score row r of v (the item it engaged
// with) above every other item of the batch. Logits are ⟨u_r, v_c⟩ − logQ[c],
// the log-Q correction removing the bias of sampling popular items as
// negatives more often; an item appearing twice in the batch is not used as
// its own negative (items holds the item index of each row). It returns the
// mean over rows of −log softmax_r(r) and writes the gradients with respect
// to u and v to du and dv. logits is a rows×rows scratch buffer (grown if
// short) and is returned for reuse.
func InBatchSoftmax(u, v blas64.General, logQ []float64, items []int32, du, dv blas64.General, logits []float64) (float64, []float64) {
	n := u.Rows
	logits = grow(logits, n*n)
	s := blas64.General{Rows: n, Cols: n, Stride: n, Data: logits}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1, u, v, 0, s)
	var loss float64
	inv := 1 / float64(n)
	for r := 0; r < n; r++ {
		row := logits[r*n : (r+1)*n]
		mx := math.Inf(-1)
		for c := range row {
			if c != r && items[c] == items[r] {
				row[c] = math.Inf(-1)
				continue
			}
			row[c] -= logQ[c]
			mx = math.Max(mx, row[c])
		}
		var sum float64
		for c, x := range row {
			e := math.Exp(x - mx)
			row[c] = e
			sum += e
		}
		loss += -math.Log(row[r] / sum)
		// The row becomes the gradient of the loss with respect to the logits.
		for c := range row {
			row[c] *= inv / sum
		}
		row[r] -= inv
	}
	// d⟨u_r, v_c⟩ = dlogit_rc: du = G·v, dv = Gᵀ·u.
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, s, v, 0, du)
	blas64.Gemm(blas.Trans, blas.NoTrans, 1, s, u, 0, dv)
	return loss * inv, logits
}
