// satemu plots: line charts rendered as SVG text.
#include "runtime/svg_plot.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace satemu::runtime {

namespace {

// Colour-blind-safe (Okabe-Ito) colours, and dashes so that lines stay
// apart in grey print.
constexpr const char* colours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                   "#E69F00", "#56B4E9", "#000000", "#F0E442"};
constexpr const char* dashes[] = {"", "8,4", "2,3", "8,3,2,3"};

// Plot area inside the image [px].
constexpr int margin_left = 80, margin_right = 190, margin_top = 50, margin_bottom = 64;

std::string px(double v) { return absl::StrFormat("%.2f", v); }

struct axis {
  std::vector<double> ticks;
  double lo = 0, hi = 1;
  double step() const { return ticks.size() > 1 ? ticks[1] - ticks[0] : 1; }
};

axis make_axis(const std::vector<const std::vector<double>*>& values, double min_step = 0) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto* v : values)
    for (double x : *v)
      if (std::isfinite(x)) {
        lo = std::min(lo, x);
        hi = std::max(hi, x);
      }
  if (!(lo <= hi)) { // no finite value at all
    lo = 0;
    hi = 1;
  }
  axis a;
  a.ticks = nice_ticks(lo, hi, 6, min_step);
  a.lo = a.ticks.front();
  a.hi = a.ticks.back();
  return a;
}

} // namespace

std::vector<double> nice_ticks(double lo, double hi, int target, double min_step) {
  if (hi == lo && lo == 0) {
    hi = 1; // a quantity that is all 0 is not drawn among negative ticks
  } else if (hi == lo) {
    const double pad = std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / static_cast<double>(target - 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  // The slack keeps a step that is 2 x 10^k up to rounding at 2 x 10^k.
  const double frac = raw / mag * (1 - 1e-9);
  const double step =
    std::max((frac <= 1 ? 1 : frac <= 2 ? 2 : frac <= 5 ? 5 : 10) * mag, min_step);
  // Tolerances keep a bound that is a multiple of the step (up to rounding)
  // from gaining an extra tick.
  const auto first = static_cast<long long>(std::floor(lo / step + 1e-9));
  const auto last = static_cast<long long>(std::ceil(hi / step - 1e-9));
  std::vector<double> out;
  for (long long k = first; k <= last; ++k)
    out.push_back(static_cast<double>(k) * step);
  return out;
}

std::string tick_label(double value, double step) {
  const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  if (std::abs(value) < step * 1e-9)
    value = 0; // no "-0.00"
  return absl::StrFormat("%.*f", decimals, value);
}

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string render_svg(const line_plot& plot) {
  std::vector<const std::vector<double>*> xs, ys;
  for (const auto& s : plot.series) {
    xs.push_back(&s.x);
    ys.push_back(&s.y);
  }
  const axis ax = make_axis(xs, plot.x_min_step), ay = make_axis(ys);
  const double left = margin_left, top = margin_top;
  const double w = plot.width - margin_left - margin_right;
  const double h = plot.height - margin_top - margin_bottom;
  auto sx = [&](double x) { return left + (x - ax.lo) / (ax.hi - ax.lo) * w; };
  auto sy = [&](double y) { return top + h - (y - ay.lo) / (ay.hi - ay.lo) * h; };

  std::string svg = absl::StrFormat(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
    "viewBox=\"0 0 %d %d\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
    "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n",
    plot.width, plot.height, plot.width, plot.height, plot.width, plot.height);
  // The title is centred on the image; one wider than the image (at about
  // 7.5 px a character) is squeezed to fit rather than cut off.
  const double title_room = plot.width - 20;
  absl::StrAppend(&svg, "<text x=\"", px(plot.width / 2.0), "\" y=\"", px(top / 2 + 5),
                  "\" text-anchor=\"middle\" font-size=\"15\"",
                  7.5 * static_cast<double>(plot.title.size()) > title_room
                    ? absl::StrCat(" textLength=\"", px(title_room),
                                   "\" lengthAdjust=\"spacingAndGlyphs\"")
                    : std::string(),
                  ">", xml_escape(plot.title), "</text>\n");

  // Grid lines, ticks and tick labels.
  absl::StrAppend(&svg, "<g class=\"x-ticks\">\n");
  for (double t : ax.ticks) {
    const std::string x = px(sx(t));
    absl::StrAppend(&svg, "<line x1=\"", x, "\" y1=\"", px(top), "\" x2=\"", x, "\" y2=\"",
                    px(top + h), "\" stroke=\"#e0e0e0\"/>\n");
    absl::StrAppend(&svg, "<line x1=\"", x, "\" y1=\"", px(top + h), "\" x2=\"", x, "\" y2=\"",
                    px(top + h + 5), "\" stroke=\"#000000\"/>\n");
    absl::StrAppend(&svg, "<text x=\"", x, "\" y=\"", px(top + h + 19),
                    "\" text-anchor=\"middle\">", tick_label(t, ax.step()), "</text>\n");
  }
  absl::StrAppend(&svg, "</g>\n<g class=\"y-ticks\">\n");
  for (double t : ay.ticks) {
    const std::string y = px(sy(t));
    absl::StrAppend(&svg, "<line x1=\"", px(left), "\" y1=\"", y, "\" x2=\"", px(left + w),
                    "\" y2=\"", y, "\" stroke=\"#e0e0e0\"/>\n");
    absl::StrAppend(&svg, "<line x1=\"", px(left - 5), "\" y1=\"", y, "\" x2=\"", px(left),
                    "\" y2=\"", y, "\" stroke=\"#000000\"/>\n");
    absl::StrAppend(&svg, "<text x=\"", px(left - 8), "\" y=\"", px(sy(t) + 4),
                    "\" text-anchor=\"end\">", tick_label(t, ay.step()), "</text>\n");
  }
  absl::StrAppend(&svg, "</g>\n");
  absl::StrAppend(&svg, "<rect x=\"", px(left), "\" y=\"", px(top), "\" width=\"", px(w),
                  "\" height=\"", px(h), "\" fill=\"none\" stroke=\"#000000\"/>\n");
  absl::StrAppend(&svg, "<text x=\"", px(left + w / 2), "\" y=\"", px(plot.height - 18),
                  "\" text-anchor=\"middle\" font-size=\"13\">", xml_escape(plot.x_label),
                  "</text>\n");
  absl::StrAppend(&svg, "<text x=\"18\" y=\"", px(top + h / 2),
                  "\" text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 18 ",
                  px(top + h / 2), ")\">", xml_escape(plot.y_label), "</text>\n");

  // Series, then the legend.
  for (std::size_t i = 0; i < plot.series.size(); ++i) {
    const auto& s = plot.series[i];
    const char* colour = colours[i % std::size(colours)];
    const char* dash = dashes[i % std::size(dashes)];
    std::string points;
    std::string markers;
    for (std::size_t k = 0; k < std::min(s.x.size(), s.y.size()); ++k) {
      if (!std::isfinite(s.x[k]) || !std::isfinite(s.y[k]))
        continue;
      const std::string x = px(sx(s.x[k])), y = px(sy(s.y[k]));
      absl::StrAppend(&points, points.empty() ? "" : " ", x, ",", y);
      absl::StrAppend(&markers, "<circle cx=\"", x, "\" cy=\"", y, "\" r=\"3\" fill=\"", colour,
                      "\"><title>", xml_escape(s.label), ": ", absl::StrFormat("%.9g", s.x[k]),
                      ", ", absl::StrFormat("%.9g", s.y[k]), "</title></circle>\n");
    }
    absl::StrAppend(&svg, "<g class=\"series\" data-label=\"", xml_escape(s.label), "\">\n");
    if (!points.empty())
      absl::StrAppend(&svg, "<polyline fill=\"none\" stroke=\"", colour, "\" stroke-width=\"2\"",
                      *dash ? absl::StrCat(" stroke-dasharray=\"", dash, "\"") : "",
                      " points=\"", points, "\"/>\n");
    absl::StrAppend(&svg, markers, "</g>\n");
  }
  absl::StrAppend(&svg, "<g class=\"legend\">\n");
  for (std::size_t i = 0; i < plot.series.size(); ++i) {
    const char* colour = colours[i % std::size(colours)];
    const char* dash = dashes[i % std::size(dashes)];
    const double x = left + w + 16, y = top + 12 + 22.0 * static_cast<double>(i);
    absl::StrAppend(&svg, "<line x1=\"", px(x), "\" y1=\"", px(y), "\" x2=\"", px(x + 30),
                    "\" y2=\"", px(y), "\" stroke=\"", colour, "\" stroke-width=\"2\"",
                    *dash ? absl::StrCat(" stroke-dasharray=\"", dash, "\"") : "", "/>\n");
    absl::StrAppend(&svg, "<circle cx=\"", px(x + 15), "\" cy=\"", px(y), "\" r=\"3\" fill=\"",
                    colour, "\"/>\n");
    absl::StrAppend(&svg, "<text x=\"", px(x + 38), "\" y=\"", px(y + 4), "\">",
                    xml_escape(plot.series[i].label), "</text>\n");
  }
  absl::StrAppend(&svg, "</g>\n</svg>\n");
  return svg;
}

} // namespace satemu::runtime
