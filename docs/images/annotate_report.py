"""Number the parts of the report screenshot that the README explains (docs/images/report-annotated.png).

Run after re-taking ``report.png`` (docs/report.md says how): ``python docs/images/annotate_report.py``.
The badge positions are pixel positions in that 1100 px wide screenshot.
"""

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
BADGES = {  # number -> centre (x, y): headline, results table, WER vs latency, RTF bars
    1: (1040, 266),
    2: (165, 306),
    3: (800, 1040),
    4: (690, 1580),
}


def main() -> None:
    image = Image.open(HERE / "report.png").convert("RGB")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=30)
    for number, (x, y) in BADGES.items():
        r = 20
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(214, 39, 40), outline=(255, 255, 255), width=3)
        draw.text((x, y), str(number), fill=(255, 255, 255), font=font, anchor="mm")
    image.save(HERE / "report-annotated.png", optimize=True)


if __name__ == "__main__":
    main()
