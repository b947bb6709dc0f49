@tool
class_name NpcScreenshot
extends RefCounted
## Captures what an NPC sees from a [Viewport] as the image map a say carries.
##
## [code]NpcScreenshot.capture(get_viewport(), "jpeg")[/code] returns
## [code]{"format": "jpeg", "data": PackedByteArray, "width": int, "height": int}[/code],
## scaled down to fit [param max_width] x [param max_height], or {} when the viewport has nothing
## to read (for example under the headless display server). Call it from the main thread after a
## frame was drawn.

## The protocol's default limits on image size.
const MAX_WIDTH := 1920
const MAX_HEIGHT := 1080


static func capture(
	viewport: Viewport,
	format: String = "jpeg",
	max_width: int = 640,
	max_height: int = 360,
	jpeg_quality: float = 0.75
) -> Dictionary:
	if viewport == null or viewport.get_texture() == null:
		return {}
	var image := viewport.get_texture().get_image()
	if image == null or image.is_empty():
		return {}
	return from_image(image, format, max_width, max_height, jpeg_quality)


## Encodes an [Image] the same way (useful for a SubViewport's texture or a picture on disk).
static func from_image(
	image: Image,
	format: String = "jpeg",
	max_width: int = 640,
	max_height: int = 360,
	jpeg_quality: float = 0.75
) -> Dictionary:
	if format != "jpeg" and format != "png":
		push_error("NpcScreenshot: format must be 'png' or 'jpeg', got '%s'" % format)
		return {}
	var copy := image.duplicate() as Image
	if copy.is_compressed():
		copy.decompress()
	copy.convert(Image.FORMAT_RGB8)
	var limit_w := mini(max_width, MAX_WIDTH)
	var limit_h := mini(max_height, MAX_HEIGHT)
	var scale := minf(1.0, minf(float(limit_w) / copy.get_width(), float(limit_h) / copy.get_height()))
	if scale < 1.0:
		var width := maxi(1, int(copy.get_width() * scale))
		var height := maxi(1, int(copy.get_height() * scale))
		copy.resize(width, height, Image.INTERPOLATE_BILINEAR)
	var data := copy.save_png_to_buffer() if format == "png" else copy.save_jpg_to_buffer(jpeg_quality)
	return {"format": format, "data": data, "width": copy.get_width(), "height": copy.get_height()}
