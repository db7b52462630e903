//! Great-circle distance (haversine) and the bounding box used to prefilter on fast fields.
//! Pure functions, no index types.

/// Mean Earth radius (IUGG), in km. Haversine on a sphere of this radius is within ~0.5% of
/// the ellipsoidal distance, which is what "within 50 km" needs.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Haversine distance between two points given in degrees, in km.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dlat = p2 - p1;
    let dlon = (lon2 - lon1).to_radians();
    let a = (dlat / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

/// A box, in degrees, that contains every point within `radius_km` of the centre. It is only
/// a prefilter: every candidate is checked again with [`distance_km`]. `lon` is `None` when
/// the box would wrap around the antimeridian or a pole (then only latitude prefilters).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoundingBox {
    pub lat: (f64, f64),
    pub lon: Option<(f64, f64)>,
}

/// Slack added to each side of the box, in degrees (float rounding must never cut a point
/// that the exact check would keep).
const BOX_SLACK_DEG: f64 = 1e-6;

pub fn bounding_box(lat: f64, lon: f64, radius_km: f64) -> BoundingBox {
    let d = radius_km / EARTH_RADIUS_KM; // angular radius, radians
    let dlat = d.to_degrees() + BOX_SLACK_DEG;
    let lat_lo = (lat - dlat).max(-90.0);
    let lat_hi = (lat + dlat).min(90.0);
    if lat_lo <= -90.0 || lat_hi >= 90.0 || d >= std::f64::consts::FRAC_PI_2 {
        return BoundingBox { lat: (lat_lo, lat_hi), lon: None };
    }
    // Largest longitude offset of a point at angular distance d (spherical trigonometry).
    let s = d.sin() / lat.to_radians().cos();
    if s >= 1.0 {
        return BoundingBox { lat: (lat_lo, lat_hi), lon: None };
    }
    let dlon = s.asin().to_degrees() + BOX_SLACK_DEG;
    let (lon_lo, lon_hi) = (lon - dlon, lon + dlon);
    if lon_lo < -180.0 || lon_hi > 180.0 {
        return BoundingBox { lat: (lat_lo, lat_hi), lon: None };
    }
    BoundingBox { lat: (lat_lo, lat_hi), lon: Some((lon_lo, lon_hi)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_distances() {
        // New York -> Los Angeles is ~3936 km on the sphere.
        let d = distance_km(40.7128, -74.0060, 34.0522, -118.2437);
        assert!((d - 3936.0).abs() < 10.0, "{d}");
        assert_eq!(distance_km(10.0, 20.0, 10.0, 20.0), 0.0);
    }

    #[test]
    fn box_contains_the_circle() {
        for &(lat, lon, r) in &[(40.0, -74.0, 50.0), (60.0, 10.0, 500.0), (-33.9, 151.2, 5.0)] {
            let b = bounding_box(lat, lon, r);
            for i in 0..360 {
                // Walk a circle just inside the radius and check each point is in the box.
                let bearing = (i as f64).to_radians();
                let d = (r * 0.999) / EARTH_RADIUS_KM;
                let (p1, l1) = (f64::to_radians(lat), f64::to_radians(lon));
                let p2 = (p1.sin() * d.cos() + p1.cos() * d.sin() * bearing.cos()).asin();
                let l2 = l1 + (bearing.sin() * d.sin() * p1.cos()).atan2(d.cos() - p1.sin() * p2.sin());
                let (p2, l2) = (p2.to_degrees(), l2.to_degrees());
                assert!(distance_km(lat, lon, p2, l2) <= r);
                assert!(p2 >= b.lat.0 && p2 <= b.lat.1, "lat {p2} outside {b:?}");
                let (lo, hi) = b.lon.expect("no wrap here");
                assert!(l2 >= lo && l2 <= hi, "lon {l2} outside {b:?}");
            }
        }
    }

    #[test]
    fn box_gives_up_on_longitude_near_poles_and_antimeridian() {
        assert_eq!(bounding_box(89.9, 0.0, 50.0).lon, None);
        assert_eq!(bounding_box(0.0, 179.9, 50.0).lon, None);
    }
}
