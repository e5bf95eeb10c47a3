#include "runtime/sgp4.hpp"

#include <cmath>
#include <numbers>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace satemu::runtime {
namespace {

constexpr double pi = std::numbers::pi;
constexpr double two_pi = 2.0 * pi;
constexpr double deg_to_rad = pi / 180.0;
constexpr double x2o3 = 2.0 / 3.0;

// WGS-72 as SGP4 uses it (Vallado 2006, getgravconst "wgs72"). These are part
// of the model: element sets are fitted with them, so they must not be
// swapped for WGS-84.
constexpr double mu_km3_s2 = 398600.8;
constexpr double earth_radius_km = 6378.135;
constexpr double j2 = 0.001082616;
constexpr double j3 = -0.00000253881;
constexpr double j4 = -0.00000165597;
constexpr double j3oj2 = j3 / j2;
// sqrt(mu) in earth radii^1.5 per minute; not constexpr (sqrt).
const double xke = 60.0 / std::sqrt(earth_radius_km * earth_radius_km * earth_radius_km / mu_km3_s2);
const double v_km_s_per_unit = earth_radius_km * xke / 60.0;

// Atmosphere density function parameters: s = 78 km, q0 = 120 km, in earth
// radii from the centre.
constexpr double s_param = 78.0 / earth_radius_km + 1.0;
constexpr double qoms2t_base = (120.0 - 78.0) / earth_radius_km;
constexpr double qoms2t = qoms2t_base * qoms2t_base * qoms2t_base * qoms2t_base;

constexpr double deep_space_period_min = 225.0;
// Divisor guard for inclinations of exactly 180 degrees.
constexpr double small_divisor = 1.5e-12;

// Python-style modulo (result has the sign of the divisor), as the reference
// implementation we validate against reduces these angles.
double floor_mod(double x, double m) {
  double r = std::fmod(x, m);
  if (r < 0) r += m;
  return r;
}

}  // namespace

const char* sgp4::describe(error_code e) {
  switch (e) {
    case error_code::ok: return "no error";
    case error_code::eccentricity_out_of_range: return "mean eccentricity out of range [-0.001, 1)";
    case error_code::negative_mean_motion: return "mean motion is not positive";
    case error_code::perturbed_eccentricity_out_of_range: return "perturbed eccentricity out of range [0, 1]";
    case error_code::negative_semi_latus_rectum: return "semi-latus rectum is negative";
    case error_code::suborbital: return "epoch elements are sub-orbital";
    case error_code::decayed: return "satellite has decayed";
  }
  return "unknown SGP4 error";
}

double sgp4::period_min() const { return two_pi / no_unkozai_; }

absl::StatusOr<sgp4> sgp4::make(const tle& t) {
  sgp4 m;
  m.label_ = t.label();
  m.where_ = absl::StrCat(t.source, ":", t.line);
  m.catalog_number_ = t.catalog_number;
  m.epoch_jd_ = t.epoch_jd();

  // TLE units to the model's: radians, radians per minute.
  const double rev_per_day_to_rad_min = 1440.0 / two_pi;
  const double no_kozai = t.mean_motion_rev_per_day / rev_per_day_to_rad_min;
  m.ecco_ = t.eccentricity;
  m.inclo_ = t.inclination_deg * deg_to_rad;
  m.nodeo_ = t.raan_deg * deg_to_rad;
  m.argpo_ = t.arg_perigee_deg * deg_to_rad;
  m.mo_ = t.mean_anomaly_deg * deg_to_rad;
  m.bstar_ = t.bstar;
  if (!(no_kozai > 0.0) || !(m.ecco_ >= 0.0 && m.ecco_ < 1.0))
    return absl::InvalidArgumentError(
        absl::StrCat(m.where_, ": ", m.label_, ": elements out of range for SGP4 (mean motion ",
                     t.mean_motion_rev_per_day, " rev/day, eccentricity ", t.eccentricity, ")"));

  // Recover the original (Brouwer) mean motion and semi-major axis from the
  // Kozai mean motion in the TLE.
  const double e = m.ecco_;
  const double eccsq = e * e;
  const double omeosq = 1.0 - eccsq;
  const double rteosq = std::sqrt(omeosq);
  const double cosio = std::cos(m.inclo_);
  const double cosio2 = cosio * cosio;
  const double sinio = std::sin(m.inclo_);
  {
    const double ak = std::pow(xke / no_kozai, x2o3);
    const double d1 = 0.75 * j2 * (3.0 * cosio2 - 1.0) / (rteosq * omeosq);
    double del = d1 / (ak * ak);
    const double adel = ak * (1.0 - del * del - del * (1.0 / 3.0 + 134.0 * del * del / 81.0));
    del = d1 / (adel * adel);
    m.no_unkozai_ = no_kozai / (1.0 + del);
  }
  const double no = m.no_unkozai_;
  const double ao = std::pow(xke / no, x2o3);

  if (m.period_min() >= deep_space_period_min)
    return absl::UnimplementedError(absl::StrFormat(
        "%s: %s: deep-space element set (period %.1f min) not supported: SDP4 is not implemented", m.where_,
        m.label_, m.period_min()));

  const double po = ao * omeosq;
  const double con42 = 1.0 - 5.0 * cosio2;
  const double posq = po * po;
  const double rp = ao * (1.0 - e);
  m.sinio_ = sinio;
  m.cosio_ = cosio;
  m.con41_ = -con42 - cosio2 - cosio2;  // 3 cos^2 i - 1

  // Perigees below 220 km use the simplified drag model (no d2..d4 terms).
  m.isimp_ = rp < 220.0 / earth_radius_km + 1.0;

  // The atmosphere's s and (q0 - s)^4 adapt to perigees below 156 km.
  double sfour = s_param;
  double qzms24 = qoms2t;
  const double perigee_km = (rp - 1.0) * earth_radius_km;
  if (perigee_km < 156.0) {
    sfour = perigee_km < 98.0 ? 20.0 : perigee_km - 78.0;
    const double q = (120.0 - sfour) / earth_radius_km;
    qzms24 = q * q * q * q;
    sfour = sfour / earth_radius_km + 1.0;
  }

  const double pinvsq = 1.0 / posq;
  const double tsi = 1.0 / (ao - sfour);
  m.eta_ = ao * e * tsi;
  const double etasq = m.eta_ * m.eta_;
  const double eeta = e * m.eta_;
  const double psisq = std::fabs(1.0 - etasq);
  const double coef = qzms24 * std::pow(tsi, 4.0);
  const double coef1 = coef / std::pow(psisq, 3.5);
  const double cc2 = coef1 * no *
                     (ao * (1.0 + 1.5 * etasq + eeta * (4.0 + etasq)) +
                      0.375 * j2 * tsi / psisq * m.con41_ * (8.0 + 3.0 * etasq * (8.0 + etasq)));
  m.cc1_ = m.bstar_ * cc2;
  const double cc3 = e > 1.0e-4 ? -2.0 * coef * tsi * j3oj2 * no * sinio / e : 0.0;
  m.x1mth2_ = 1.0 - cosio2;
  m.cc4_ = 2.0 * no * coef1 * ao * omeosq *
           (m.eta_ * (2.0 + 0.5 * etasq) + e * (0.5 + 2.0 * etasq) -
            j2 * tsi / (ao * psisq) *
                (-3.0 * m.con41_ * (1.0 - 2.0 * eeta + etasq * (1.5 - 0.5 * eeta)) +
                 0.75 * m.x1mth2_ * (2.0 * etasq - eeta * (1.0 + etasq)) * std::cos(2.0 * m.argpo_)));
  m.cc5_ = 2.0 * coef1 * ao * omeosq * (1.0 + 2.75 * (etasq + eeta) + eeta * etasq);

  // Secular rates from J2 (first and second order) and J4.
  const double cosio4 = cosio2 * cosio2;
  const double temp1 = 1.5 * j2 * pinvsq * no;
  const double temp2 = 0.5 * temp1 * j2 * pinvsq;
  const double temp3 = -0.46875 * j4 * pinvsq * pinvsq * no;
  m.mdot_ = no + 0.5 * temp1 * rteosq * m.con41_ + 0.0625 * temp2 * rteosq * (13.0 - 78.0 * cosio2 + 137.0 * cosio4);
  m.argpdot_ = -0.5 * temp1 * con42 + 0.0625 * temp2 * (7.0 - 114.0 * cosio2 + 395.0 * cosio4) +
               temp3 * (3.0 - 36.0 * cosio2 + 49.0 * cosio4);
  const double xhdot1 = -temp1 * cosio;
  m.nodedot_ = xhdot1 + (0.5 * temp2 * (4.0 - 19.0 * cosio2) + 2.0 * temp3 * (3.0 - 7.0 * cosio2)) * cosio;

  m.omgcof_ = m.bstar_ * cc3 * std::cos(m.argpo_);
  m.xmcof_ = e > 1.0e-4 ? -x2o3 * coef * m.bstar_ / eeta : 0.0;
  m.nodecf_ = 3.5 * omeosq * xhdot1 * m.cc1_;
  m.t2cof_ = 1.5 * m.cc1_;
  const double one_plus_cosio = std::fabs(cosio + 1.0) > small_divisor ? 1.0 + cosio : small_divisor;
  m.xlcof_ = -0.25 * j3oj2 * sinio * (3.0 + 5.0 * cosio) / one_plus_cosio;
  m.aycof_ = -0.5 * j3oj2 * sinio;
  const double delmo = 1.0 + m.eta_ * std::cos(m.mo_);
  m.delmo_ = delmo * delmo * delmo;
  m.sinmao_ = std::sin(m.mo_);
  m.x7thm1_ = 7.0 * cosio2 - 1.0;

  if (!m.isimp_) {
    const double cc1sq = m.cc1_ * m.cc1_;
    m.d2_ = 4.0 * ao * tsi * cc1sq;
    const double temp = m.d2_ * tsi * m.cc1_ / 3.0;
    m.d3_ = (17.0 * ao + sfour) * temp;
    m.d4_ = 0.5 * temp * ao * tsi * (221.0 * ao + 31.0 * sfour) * m.cc1_;
    m.t3cof_ = m.d2_ + 2.0 * cc1sq;
    m.t4cof_ = 0.25 * (3.0 * m.d3_ + m.cc1_ * (12.0 * m.d2_ + 10.0 * cc1sq));
    m.t5cof_ = 0.2 * (3.0 * m.d4_ + 12.0 * m.cc1_ * m.d3_ + 6.0 * m.d2_ * m.d2_ + 15.0 * cc1sq * (2.0 * m.d2_ + cc1sq));
  }

  // The standard initialises by propagating to epoch; its errors there are
  // errors of the element set.
  state s;
  if (const error_code ec = m.propagate(0.0, s); ec != error_code::ok)
    return absl::InvalidArgumentError(absl::StrCat(m.where_, ": ", m.label_, ": rejected at epoch: ",
                                                   describe(ec), " (SGP4 error ", static_cast<int>(ec), ")"));
  return m;
}

sgp4::error_code sgp4::propagate(double t, state& out) const noexcept {
  // Secular effects of gravity and drag.
  const double xmdf = mo_ + mdot_ * t;
  const double argpdf = argpo_ + argpdot_ * t;
  const double nodedf = nodeo_ + nodedot_ * t;
  const double t2 = t * t;
  double argpm = argpdf;
  double mm = xmdf;
  double nodem = nodedf + nodecf_ * t2;
  double tempa = 1.0 - cc1_ * t;
  double tempe = bstar_ * cc4_ * t;
  double templ = t2cof_ * t2;
  if (!isimp_) {
    const double delomg = omgcof_ * t;
    const double x = 1.0 + eta_ * std::cos(xmdf);
    const double delm = xmcof_ * (x * x * x - delmo_);
    const double temp = delomg + delm;
    mm = xmdf + temp;
    argpm = argpdf - temp;
    const double t3 = t2 * t;
    const double t4 = t3 * t;
    tempa = tempa - d2_ * t2 - d3_ * t3 - d4_ * t4;
    tempe = tempe + bstar_ * cc5_ * (std::sin(mm) - sinmao_);
    templ = templ + t3cof_ * t3 + t4 * (t4cof_ + t * t5cof_);
  }

  double nm = no_unkozai_;
  if (nm <= 0.0) return error_code::negative_mean_motion;
  const double am = std::pow(xke / nm, x2o3) * tempa * tempa;
  nm = xke / std::pow(am, 1.5);
  double em = ecco_ - tempe;
  if (em >= 1.0 || em < -0.001) return error_code::eccentricity_out_of_range;
  if (em < 1.0e-6) em = 1.0e-6;
  mm = mm + no_unkozai_ * templ;
  double xlm = mm + argpm + nodem;
  nodem = std::fmod(nodem, two_pi);
  argpm = floor_mod(argpm, two_pi);
  xlm = floor_mod(xlm, two_pi);
  mm = floor_mod(xlm - argpm - nodem, two_pi);

  // Long-period periodics (J3).
  const double ep = em;
  const double axnl = ep * std::cos(argpm);
  double temp = 1.0 / (am * (1.0 - ep * ep));
  const double aynl = ep * std::sin(argpm) + temp * aycof_;
  const double xl = mm + argpm + nodem + temp * xlcof_ * axnl;

  // Kepler's equation for the eccentric longitude, Newton steps capped at
  // 0.95 rad.
  const double u = floor_mod(xl - nodem, two_pi);
  double eo1 = u;
  double sineo1 = 0, coseo1 = 0;
  double step = 9999.9;
  for (int k = 1; std::fabs(step) >= 1.0e-12 && k <= 10; ++k) {
    sineo1 = std::sin(eo1);
    coseo1 = std::cos(eo1);
    step = (u - aynl * coseo1 + axnl * sineo1 - eo1) / (1.0 - coseo1 * axnl - sineo1 * aynl);
    if (std::fabs(step) >= 0.95) step = step > 0.0 ? 0.95 : -0.95;
    eo1 += step;
  }

  // Short-period periodics (J2).
  const double ecose = axnl * coseo1 + aynl * sineo1;
  const double esine = axnl * sineo1 - aynl * coseo1;
  const double el2 = axnl * axnl + aynl * aynl;
  const double pl = am * (1.0 - el2);
  if (pl < 0.0) return error_code::negative_semi_latus_rectum;
  const double rl = am * (1.0 - ecose);
  const double rdotl = std::sqrt(am) * esine / rl;
  const double rvdotl = std::sqrt(pl) / rl;
  const double betal = std::sqrt(1.0 - el2);
  temp = esine / (1.0 + betal);
  const double sinu = am / rl * (sineo1 - aynl - axnl * temp);
  const double cosu = am / rl * (coseo1 - axnl + aynl * temp);
  double su = std::atan2(sinu, cosu);
  const double sin2u = (cosu + cosu) * sinu;
  const double cos2u = 1.0 - 2.0 * sinu * sinu;
  temp = 1.0 / pl;
  const double temp1 = 0.5 * j2 * temp;
  const double temp2 = temp1 * temp;

  const double mrt = rl * (1.0 - 1.5 * temp2 * betal * con41_) + 0.5 * temp1 * x1mth2_ * cos2u;
  su = su - 0.25 * temp2 * x7thm1_ * sin2u;
  const double xnode = nodem + 1.5 * temp2 * cosio_ * sin2u;
  const double xinc = inclo_ + 1.5 * temp2 * cosio_ * sinio_ * cos2u;
  const double mvt = rdotl - nm * temp1 * x1mth2_ * sin2u / xke;
  const double rvdot = rvdotl + nm * temp1 * (x1mth2_ * cos2u + 1.5 * con41_) / xke;

  // Orientation: u along the radius, v along the track, in TEME.
  const double sinsu = std::sin(su), cossu = std::cos(su);
  const double snod = std::sin(xnode), cnod = std::cos(xnode);
  const double sini = std::sin(xinc), cosi = std::cos(xinc);
  const double xmx = -snod * cosi;
  const double xmy = cnod * cosi;
  const double ux = xmx * sinsu + cnod * cossu;
  const double uy = xmy * sinsu + snod * cossu;
  const double uz = sini * sinsu;
  const double vx = xmx * cossu - cnod * sinsu;
  const double vy = xmy * cossu - snod * sinsu;
  const double vz = sini * cossu;

  const double r_km = mrt * earth_radius_km;
  out.r_km[0] = r_km * ux;
  out.r_km[1] = r_km * uy;
  out.r_km[2] = r_km * uz;
  out.v_km_s[0] = (mvt * ux + rvdot * vx) * v_km_s_per_unit;
  out.v_km_s[1] = (mvt * uy + rvdot * vy) * v_km_s_per_unit;
  out.v_km_s[2] = (mvt * uz + rvdot * vz) * v_km_s_per_unit;

  if (mrt < 1.0) return error_code::decayed;
  return error_code::ok;
}

absl::StatusOr<sgp4::state> sgp4::at_minutes(double tsince_min) const {
  state s;
  const error_code ec = propagate(tsince_min, s);
  if (ec == error_code::ok) return s;
  return absl::InvalidArgumentError(absl::StrFormat("%s: %s at %+.1f min: %s (SGP4 error %d)", where_, label_,
                                                    tsince_min, describe(ec), static_cast<int>(ec)));
}

}  // namespace satemu::runtime
