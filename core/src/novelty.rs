//! Out-of-distribution scores from the backbone embeddings sprig computes anyway: how far an
//! image's embedding lies from a version's training images.
//!
//! Embeddings (1280 wide) go through a fixed Gaussian projection to [`DIMS`] dimensions; there,
//! per class, a mean, and one within-class covariance shared by the classes, shrunk towards its
//! average variance so that a few hundred images give a usable inverse. An image's distance is
//! the Mahalanobis distance to the nearest class mean. The threshold is a quantile of the
//! distances of the version's own images, each scored by statistics fitted without it (k
//! folds), so it is set on images the statistics never saw, as served images are. Served
//! novelty is the distance in units of that threshold: above 1.0 is out of distribution.
//!
//! Why not the full 1280 dimensions: the covariance would need far more images than a data set
//! has, and the score would cost 1280² multiply-adds per prediction instead of 1280 × 64.

use sprig_backends::SplitMix;
use sprig_store::DistributionReference;

/// Projected dimensions.
pub const DIMS: usize = 64;
/// Weight of the average variance mixed into the covariance (its smallest eigenvalues otherwise
/// vanish with fewer images than dimensions).
const SHRINKAGE: f64 = 0.1;
/// Of the version's own (out-of-sample) images, this share stays below novelty 1.0.
pub const THRESHOLD_QUANTILE: f64 = 0.99;
const FOLDS: usize = 5;
/// With fewer labelled images than this a version gets no reference (and no flags).
pub const MIN_IMAGES: usize = 20;
const PROJECTION_SEED: u64 = 0x5350_5249_4700_0003;

/// The `q` quantile of ascending `sorted` values, interpolating between neighbours.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

/// A fixed random projection, `width × dims`, row-major.
struct Projection {
    width: usize,
    dims: usize,
    matrix: Vec<f32>,
}

impl Projection {
    fn new(seed: u64, width: usize, dims: usize) -> Self {
        let mut rng = SplitMix::new(seed);
        let scale = 1.0 / (dims as f64).sqrt();
        let matrix = (0..width * dims)
            .map(|_| {
                // Box–Muller: a standard normal from two uniforms.
                let (u, v) = (1.0 - rng.next_unit(), rng.next_unit());
                ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos() * scale) as f32
            })
            .collect();
        Self {
            width,
            dims,
            matrix,
        }
    }

    fn apply(&self, embedding: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0f32; self.dims];
        for (&x, row) in embedding.iter().zip(self.matrix.chunks_exact(self.dims)) {
            for (o, &w) in out.iter_mut().zip(row) {
                *o += x * w;
            }
        }
        out
    }
}

/// Class means and the shared precision matrix, fitted in f64.
struct Fit {
    /// `None` for a class without images.
    means: Vec<Option<Vec<f64>>>,
    precision: Vec<f64>,
}

impl Fit {
    fn new(points: &[&[f32]], labels: &[usize], classes: usize) -> Option<Self> {
        let d = points.first()?.len();
        let mut sums = vec![vec![0.0f64; d]; classes];
        let mut counts = vec![0usize; classes];
        for (point, &label) in points.iter().zip(labels) {
            counts[label] += 1;
            for (s, &x) in sums[label].iter_mut().zip(point.iter()) {
                *s += f64::from(x);
            }
        }
        let means: Vec<Option<Vec<f64>>> = sums
            .into_iter()
            .zip(&counts)
            .map(|(sum, &n)| (n > 0).then(|| sum.iter().map(|s| s / n as f64).collect()))
            .collect();
        let mut covariance = vec![0.0f64; d * d];
        for (point, &label) in points.iter().zip(labels) {
            let mean = means[label].as_ref()?;
            let centred: Vec<f64> = point
                .iter()
                .zip(mean)
                .map(|(&x, m)| f64::from(x) - m)
                .collect();
            for (i, &a) in centred.iter().enumerate() {
                for (j, &b) in centred.iter().enumerate().skip(i) {
                    covariance[i * d + j] += a * b;
                }
            }
        }
        let present = counts.iter().filter(|&&n| n > 0).count();
        let dof = points.len().saturating_sub(present).max(1) as f64;
        for i in 0..d {
            for j in i..d {
                covariance[i * d + j] /= dof;
                covariance[j * d + i] = covariance[i * d + j];
            }
        }
        let average = ((0..d).map(|i| covariance[i * d + i]).sum::<f64>() / d as f64).max(1e-12);
        for (index, value) in covariance.iter_mut().enumerate() {
            *value *= 1.0 - SHRINKAGE;
            if index % (d + 1) == 0 {
                *value += SHRINKAGE * average;
            }
        }
        Some(Self {
            means,
            precision: invert_spd(&covariance, d)?,
        })
    }

    fn distance(&self, point: &[f32]) -> f64 {
        let d = point.len();
        self.means
            .iter()
            .flatten()
            .map(|mean| {
                let diff: Vec<f64> = point
                    .iter()
                    .zip(mean)
                    .map(|(&x, m)| f64::from(x) - m)
                    .collect();
                let mut total = 0.0;
                for (i, &a) in diff.iter().enumerate() {
                    let row = &self.precision[i * d..(i + 1) * d];
                    total += a * row.iter().zip(&diff).map(|(p, b)| p * b).sum::<f64>();
                }
                total.max(0.0).sqrt()
            })
            .fold(f64::INFINITY, f64::min)
    }
}

/// Inverse of a symmetric positive definite `d × d` matrix (Cholesky); `None` if it is not.
fn invert_spd(matrix: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0f64; d * d];
    for i in 0..d {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            if i == j {
                let pivot = matrix[i * d + i] - sum;
                if pivot <= 0.0 || !pivot.is_finite() {
                    return None;
                }
                l[i * d + i] = pivot.sqrt();
            } else {
                l[i * d + j] = (matrix[i * d + j] - sum) / l[j * d + j];
            }
        }
    }
    // Solve L Lᵀ X = I column by column.
    let mut inverse = vec![0.0f64; d * d];
    for column in 0..d {
        let mut y = vec![0.0f64; d];
        for i in 0..d {
            let target = if i == column { 1.0 } else { 0.0 };
            let sum: f64 = (0..i).map(|k| l[i * d + k] * y[k]).sum();
            y[i] = (target - sum) / l[i * d + i];
        }
        for i in (0..d).rev() {
            let sum: f64 = (i + 1..d)
                .map(|k| l[k * d + i] * inverse[k * d + column])
                .sum();
            inverse[i * d + column] = (y[i] - sum) / l[i * d + i];
        }
    }
    Some(inverse)
}

/// The embedding part of a version's reference (the caller adds its validation answers), or
/// `None` with fewer than [`MIN_IMAGES`] images.
pub fn reference(
    embeddings: &[Vec<f32>],
    labels: &[usize],
    classes: usize,
) -> Option<DistributionReference> {
    if embeddings.len() < MIN_IMAGES || embeddings.len() != labels.len() {
        return None;
    }
    let width = embeddings[0].len();
    let projection = Projection::new(PROJECTION_SEED, width, DIMS);
    let points: Vec<Vec<f32>> = embeddings.iter().map(|e| projection.apply(e)).collect();
    let mut out_of_sample = Vec::with_capacity(points.len());
    for fold in 0..FOLDS {
        let (fit_points, fit_labels): (Vec<&[f32]>, Vec<usize>) = points
            .iter()
            .zip(labels)
            .enumerate()
            .filter(|(i, _)| i % FOLDS != fold)
            .map(|(_, (p, &l))| (p.as_slice(), l))
            .unzip();
        let fit = Fit::new(&fit_points, &fit_labels, classes)?;
        out_of_sample.extend(
            points
                .iter()
                .enumerate()
                .filter(|(i, _)| i % FOLDS == fold)
                .map(|(_, p)| fit.distance(p)),
        );
    }
    let mut sorted = out_of_sample.clone();
    sorted.sort_by(f64::total_cmp);
    let threshold = quantile(&sorted, THRESHOLD_QUANTILE).max(1e-6);
    let all: Vec<&[f32]> = points.iter().map(Vec::as_slice).collect();
    let fit = Fit::new(&all, labels, classes)?;
    let mut class_prior = vec![0.0f64; classes];
    for &label in labels {
        class_prior[label] += 1.0;
    }
    class_prior
        .iter_mut()
        .for_each(|p| *p /= labels.len() as f64);
    Some(DistributionReference {
        embedding_width: width as u32,
        projection_seed: PROJECTION_SEED,
        dims: DIMS as u32,
        class_means: fit
            .means
            .iter()
            .map(|m| {
                m.as_ref()
                    .map_or_else(Vec::new, |m| m.iter().map(|&x| x as f32).collect())
            })
            .collect(),
        precision: fit.precision.iter().map(|&x| x as f32).collect(),
        threshold: threshold as f32,
        threshold_quantile: THRESHOLD_QUANTILE,
        novelty_samples: out_of_sample
            .iter()
            .map(|&x| (x / threshold) as f32)
            .collect(),
        class_prior,
        confidence_samples: Vec::new(),
        predicted_samples: Vec::new(),
    })
}

/// Scores served embeddings against one version's reference.
pub struct NoveltyScorer {
    projection: Projection,
    means: Vec<Vec<f32>>,
    precision: Vec<f32>,
    threshold: f32,
}

impl NoveltyScorer {
    pub fn new(reference: &DistributionReference) -> Option<Self> {
        let dims = reference.dims as usize;
        let means: Vec<Vec<f32>> = reference
            .class_means
            .iter()
            .filter(|m| m.len() == dims)
            .cloned()
            .collect();
        (reference.precision.len() == dims * dims && !means.is_empty()).then(|| Self {
            projection: Projection::new(
                reference.projection_seed,
                reference.embedding_width as usize,
                dims,
            ),
            means,
            precision: reference.precision.clone(),
            threshold: reference.threshold,
        })
    }

    /// Novelty of one embedding (1.0 = the threshold); `None` if its width is not the
    /// reference's.
    pub fn score(&self, embedding: &[f32]) -> Option<f32> {
        if embedding.len() != self.projection.width {
            return None;
        }
        let point = self.projection.apply(embedding);
        let d = point.len();
        let mut diff = vec![0.0f32; d];
        let nearest = self
            .means
            .iter()
            .map(|mean| {
                for ((out, &x), &m) in diff.iter_mut().zip(&point).zip(mean) {
                    *out = x - m;
                }
                let mut total = 0.0f32;
                for (row, &a) in self.precision.chunks_exact(d).zip(&diff) {
                    total += a * row.iter().zip(&diff).map(|(p, b)| p * b).sum::<f32>();
                }
                total.max(0.0).sqrt()
            })
            .fold(f32::INFINITY, f32::min);
        Some(nearest / self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points around two class centres in 1280 dimensions, and points far from both.
    fn cloud(rng: &mut SplitMix, centre: f32, n: usize) -> Vec<Vec<f32>> {
        (0..n)
            .map(|_| {
                (0..1280)
                    .map(|i| centre * ((i % 7) as f32) + rng.next_unit() as f32)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn flags_points_far_from_the_training_classes_only() {
        let mut rng = SplitMix::new(7);
        let mut embeddings = cloud(&mut rng, 0.0, 60);
        embeddings.extend(cloud(&mut rng, 1.0, 60));
        let labels: Vec<usize> = (0..120).map(|i| i / 60).collect();
        let reference = reference(&embeddings, &labels, 2).unwrap();
        assert_eq!(reference.novelty_samples.len(), 120);
        assert_eq!(reference.class_prior, [0.5, 0.5]);
        let scorer = NoveltyScorer::new(&reference).unwrap();
        let fresh: Vec<f32> = cloud(&mut rng, 1.0, 50)
            .iter()
            .map(|e| scorer.score(e).unwrap())
            .collect();
        let flagged = fresh.iter().filter(|&&n| n > 1.0).count();
        assert!(
            flagged <= 3,
            "{flagged} of 50 in-distribution points flagged"
        );
        let far: Vec<f32> = cloud(&mut rng, 3.0, 50)
            .iter()
            .map(|e| scorer.score(e).unwrap())
            .collect();
        assert!(far.iter().all(|&n| n > 1.0), "{far:?}");
        assert!(scorer.score(&[0.0; 10]).is_none());
        assert!(super::reference(&embeddings[..10], &labels[..10], 2).is_none());
    }

    #[test]
    fn inverse_of_a_known_matrix() {
        let inverse = invert_spd(&[4.0, 2.0, 2.0, 3.0], 2).unwrap();
        let expected = [0.375, -0.25, -0.25, 0.5];
        for (a, b) in inverse.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{inverse:?}");
        }
        assert!(invert_spd(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }
}
