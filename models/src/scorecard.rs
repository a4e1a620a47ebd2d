//! Credit scorecard: points = offset + factor·ln(odds_good), odds_good = (1 − p)/p with p the
//! probability of default, factor = PDO/ln 2 and offset = base_points − factor·ln(base_odds).
//! Grades come from descending point cut-offs.

use serde::{Deserialize, Serialize};

/// What the bank may learn about each scored entity, coarsest to finest (the gov's cap). Every
/// level includes the coarser ones; the cap is applied inside the secure computation, so a
/// finer value is never opened (see `capped`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreOutput {
    /// The grade only.
    Grade,
    /// The grade and the integer points round(offset − factor·z).
    Points,
    /// Grade, points, and the logit z (hence the probability of default 1/(1 + e^−z)).
    Probability,
}

/// One grade and the lowest points that still earn it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradeCut {
    pub grade: String,
    pub min_points: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Scorecard {
    /// Points at `base_odds` (good:bad).
    pub base_points: f64,
    pub base_odds: f64,
    /// Points that double the odds.
    pub pdo: f64,
    /// Grades from best to worst with strictly descending `min_points`.
    pub grades: Vec<GradeCut>,
    /// Grade below the last cut-off.
    pub lowest_grade: String,
}

impl Default for Scorecard {
    /// 600 points at 50:1, PDO 20; S ≥ 620 (≈100:1), A+ ≥ 600 (50:1), A ≥ 570 (≈18:1),
    /// B ≥ 540 (≈6:1), C ≥ 500 (≈1.6:1), D below.
    fn default() -> Scorecard {
        let cut = |grade: &str, min_points: f64| GradeCut { grade: grade.into(), min_points };
        Scorecard {
            base_points: 600.0,
            base_odds: 50.0,
            pdo: 20.0,
            grades: vec![cut("S", 620.0), cut("A+", 600.0), cut("A", 570.0), cut("B", 540.0), cut("C", 500.0)],
            lowest_grade: "D".into(),
        }
    }
}

impl Scorecard {
    /// Checks the configuration; the message names the field and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.pdo.is_finite() && self.pdo > 0.0) {
            return Err(format!("scorecard.pdo = {}: must be a positive number of points", self.pdo));
        }
        if !(self.base_odds.is_finite() && self.base_odds > 0.0) {
            return Err(format!("scorecard.base_odds = {}: must be positive (good:bad, e.g. 50)", self.base_odds));
        }
        if !self.base_points.is_finite() {
            return Err("scorecard.base_points must be a finite number".into());
        }
        for w in self.grades.windows(2) {
            if w[0].min_points <= w[1].min_points || w[0].min_points.is_nan() {
                return Err(format!(
                    "scorecard.grades: cut-off of '{}' ({}) must be above that of '{}' ({}); list grades best first with descending points",
                    w[0].grade, w[0].min_points, w[1].grade, w[1].min_points
                ));
            }
        }
        if self.grades.iter().any(|g| !g.min_points.is_finite()) {
            return Err("scorecard.grades: every min_points must be a finite number".into());
        }
        Ok(())
    }

    pub fn factor(&self) -> f64 {
        self.pdo / std::f64::consts::LN_2
    }

    pub fn offset(&self) -> f64 {
        self.base_points - self.factor() * self.base_odds.ln()
    }

    /// Points for a model logit z = ln(p/(1−p)): ln(odds_good) = −z.
    pub fn points_from_logit(&self, z: f64) -> f64 {
        self.offset() - self.factor() * z
    }

    /// Points for a probability of default p in (0, 1).
    pub fn points(&self, p: f64) -> f64 {
        self.offset() + self.factor() * ((1.0 - p) / p).ln()
    }

    pub fn grade(&self, points: f64) -> &str {
        self.grades.iter().find(|g| points >= g.min_points).map_or(self.lowest_grade.as_str(), |g| g.grade.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_pdo_and_grades() {
        let sc = Scorecard::default();
        sc.validate().unwrap();
        // 50:1 good:bad → p = 1/51 → 600 points; doubling the odds adds PDO.
        assert!((sc.points(1.0 / 51.0) - 600.0).abs() < 1e-9);
        assert!((sc.points(1.0 / 101.0) - 620.0).abs() < 1e-9);
        assert!((sc.points(1.0 / 26.0) - 580.0).abs() < 1e-9);
        for p in [0.01, 0.2, 0.5, 0.9] {
            assert!((sc.points(p) - sc.points_from_logit((p / (1.0 - p)).ln())).abs() < 1e-9);
        }
        let grades: Vec<&str> =
            [700.0, 620.0, 610.0, 570.0, 555.0, 500.0, 499.9].iter().map(|&p| sc.grade(p)).collect();
        assert_eq!(grades, ["S", "S", "A+", "A", "B", "C", "D"]);
        let json = serde_json::to_string(&sc).unwrap();
        assert_eq!(serde_json::from_str::<Scorecard>(&json).unwrap(), sc);
        let partial: Scorecard = serde_json::from_str(r#"{"pdo": 40}"#).unwrap();
        assert_eq!((partial.pdo, partial.base_points, partial.grades.len()), (40.0, 600.0, 5));
    }

    #[test]
    fn invalid_configuration_is_refused() {
        let mut sc = Scorecard { pdo: 0.0, ..Scorecard::default() };
        assert!(sc.validate().unwrap_err().contains("pdo"));
        sc.pdo = 20.0;
        sc.grades[2].min_points = 605.0;
        assert!(sc.validate().unwrap_err().contains("descending"));
    }
}
