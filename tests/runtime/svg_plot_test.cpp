// Tests of the SVG line charts: tick choice, labels, escaping, and that the
// drawn points map back to the data.
#include "runtime/svg_plot.hpp"

#include <cmath>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

using namespace satemu::runtime;

TEST(svg_plot, nice_ticks_cover_the_range_in_1_2_5_steps) {
  // 0.43..0.53 over ~6 ticks: raw step 0.02 -> 0.02, from 0.42 to 0.54.
  auto t = nice_ticks(0.43, 0.53);
  ASSERT_EQ(t.size(), 7u);
  EXPECT_NEAR(t.front(), 0.42, 1e-12);
  EXPECT_NEAR(t.back(), 0.54, 1e-12);
  EXPECT_NEAR(t[1] - t[0], 0.02, 1e-12);
  // 1..21: raw step 4 -> 5, ticks 0, 5, ..., 25.
  EXPECT_EQ(nice_ticks(1, 21), (std::vector<double>{0, 5, 10, 15, 20, 25}));
  // Bounds on a multiple of the step do not gain an extra tick.
  EXPECT_EQ(nice_ticks(0, 10), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  // 160..1920 km: raw 352 -> 500.
  EXPECT_EQ(nice_ticks(160, 1920), (std::vector<double>{0, 500, 1000, 1500, 2000}));
  // Negative ranges and a single value.
  // -3..3: raw 1.2 -> 2.
  EXPECT_EQ(nice_ticks(-3, 3), (std::vector<double>{-4, -2, 0, 2, 4}));
  auto one = nice_ticks(5, 5);
  EXPECT_LE(one.front(), 5);
  EXPECT_GE(one.back(), 5);
  EXPECT_GT(one.size(), 2u);
  // All zero (a time per chunk of 0 s): no negative ticks.
  EXPECT_EQ(nice_ticks(0, 0).front(), 0);
  EXPECT_EQ(nice_ticks(0, 0).back(), 1);
  // Whole numbers (server counts): no tick between two.
  EXPECT_EQ(nice_ticks(9, 9, 6, 1), (std::vector<double>{8, 9, 10}));
  EXPECT_EQ(nice_ticks(9, 9), (std::vector<double>{8, 8.5, 9, 9.5, 10}));
}

TEST(svg_plot, tick_labels_have_the_decimals_of_the_step) {
  EXPECT_EQ(tick_label(0.42, 0.02), "0.42");
  EXPECT_EQ(tick_label(0.5, 0.1), "0.5");
  EXPECT_EQ(tick_label(1500, 500), "1500");
  EXPECT_EQ(tick_label(0.005, 0.005), "0.005");
  EXPECT_EQ(tick_label(-1e-17, 0.02), "0.00");
}

TEST(svg_plot, text_is_escaped) {
  EXPECT_EQ(xml_escape("a<b & \"c\" > 'd'"), "a&lt;b &amp; &quot;c&quot; &gt; &apos;d&apos;");
  line_plot p;
  p.title = "x < y & z";
  p.series.push_back({"<s>", {1, 2}, {3, 4}});
  const auto svg = render_svg(p);
  EXPECT_NE(svg.find("x &lt; y &amp; z"), std::string::npos);
  EXPECT_NE(svg.find("&lt;s&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("<s>"), std::string::npos);
}

TEST(svg_plot, the_title_is_centred_on_the_image_and_a_long_one_squeezed_to_fit) {
  line_plot p;
  p.series.push_back({"s", {1, 2}, {3, 4}});
  p.title = "short";
  auto svg = render_svg(p);
  EXPECT_NE(svg.find("<text x=\"400.00\" y=\"30.00\" text-anchor=\"middle\" font-size=\"15\">short<"),
            std::string::npos)
    << svg;
  p.title = std::string(120, 'x');
  svg = render_svg(p);
  EXPECT_NE(svg.find("text-anchor=\"middle\" font-size=\"15\" textLength=\"780.00\" "
                     "lengthAdjust=\"spacingAndGlyphs\">xxx"),
            std::string::npos)
    << svg;
}

TEST(svg_plot, document_has_axes_labels_legend_and_points_on_the_data) {
  line_plot p;
  p.title = "fetch";
  p.x_label = "servers";
  p.y_label = "fetch time [s]";
  p.series.push_back({"rotation", {9, 25, 49, 81}, {0.1, 0.2, 0.3, 0.4}});
  p.series.push_back({"hop", {9, 25, 49, 81}, {0.15, 0.25, 0.35, 0.45}});
  const auto svg = render_svg(p);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(svg.find("</svg>\n"), std::string::npos);
  EXPECT_EQ(svg.find("href"), std::string::npos); // self-contained
  for (const char* s : {">fetch<", ">servers<", ">fetch time [s]<", ">rotation<", ">hop<"})
    EXPECT_NE(svg.find(s), std::string::npos) << s;
  // x ticks 0, 20, ..., 100 (raw 14.4 -> 20), y ticks 0.1, 0.2, 0.3, 0.4, 0.5 (0.07 -> 0.1).
  for (const char* s : {">0<", ">20<", ">100<", ">0.1<", ">0.5<"})
    EXPECT_NE(svg.find(s), std::string::npos) << s;
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '\n') > 0, true);
  // Two polylines of four points each; the first series' points map back
  // to the data through the plot area (x from 80 px over 530 px for 0..100,
  // y from 366 px up over 366 px for 0.1..0.5 in an 800x480 image).
  std::regex poly("<polyline[^>]*points=\"([^\"]*)\"");
  auto it = std::sregex_iterator(svg.begin(), svg.end(), poly);
  ASSERT_NE(it, std::sregex_iterator());
  const std::string pts = (*it)[1];
  std::regex pair("([0-9.]+),([0-9.]+)");
  std::vector<std::pair<double, double>> xy;
  for (auto m = std::sregex_iterator(pts.begin(), pts.end(), pair); m != std::sregex_iterator();
       ++m)
    xy.emplace_back(std::stod((*m)[1]), std::stod((*m)[2]));
  ASSERT_EQ(xy.size(), 4u);
  const double left = 80, width = 800 - 80 - 190, top = 50, height = 480 - 50 - 64;
  const double xs[] = {9, 25, 49, 81}, ys[] = {0.1, 0.2, 0.3, 0.4};
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(xy[i].first, left + xs[i] / 100 * width, 0.01) << i;
    EXPECT_NEAR(xy[i].second, top + height - (ys[i] - 0.1) / 0.4 * height, 0.01) << i;
  }
  EXPECT_EQ(std::distance(it, std::sregex_iterator()), 2);
}

TEST(svg_plot, empty_and_non_finite_series_are_drawn_safely) {
  line_plot p;
  p.series.push_back({"empty", {}, {}});
  p.series.push_back({"nan", {1, 2, 3}, {1, NAN, 2}});
  const auto svg = render_svg(p);
  EXPECT_NE(svg.find(">empty<"), std::string::npos);
  EXPECT_EQ(svg.find("nan,"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
}

} // namespace
