use super::*;
use crate::index::{FileIndex, IndexOptions};

/// `type_name kind @line` of what implements `name` in `source` (indexed as `path`).
fn implementors(path: &str, source: &str, name: &str) -> Vec<String> {
    let file = FileIndex::new(path, source, &IndexOptions::default());
    let defs: Vec<&Definition> = file.definitions().iter().collect();
    let text = |d: &Definition| source.get(d.start_byte..d.end_byte);
    find_implementations(&defs, name, text)
        .into_iter()
        .map(|i| format!("{} {} @{}", i.type_name, i.kind, i.start_line))
        .collect()
}

#[test]
fn rust_impls_and_supertraits() {
    let src = r#"
use std::fmt;
pub trait Shape { fn area(&self) -> f64; }
pub trait Solid: Shape + Send {}
struct Circle(f64);
struct Wrapper<T>(T);
impl Shape for Circle { fn area(&self) -> f64 { self.0 } }
impl<T: Shape> Shape for Wrapper<T> { fn area(&self) -> f64 { 0.0 } }
impl<T: Shape> Shape for T {}
impl<'a, T: Shape> Shape for &'a T {}
impl fmt::Display for Circle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { write!(f, "c") }
}
impl<T> std::fmt::Display for Wrapper<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { Ok(()) }
}
impl Circle { fn new() -> Self { Circle(1.0) } }
impl From<f64> for Circle { fn from(r: f64) -> Self { Circle(r) } }
impl Shape for Circle { fn area(&self) -> f64 { 1.0 } }
"#;
    expect_test::expect![[r#"
            [
                "Solid interface @4",
                "Circle impl @7",
                "Wrapper impl @8",
                "Circle impl @19",
            ]
        "#]]
    .assert_debug_eq(&implementors("src/lib.rs", src, "Shape"));
    expect_test::expect![[r#"
            [
                "Circle impl @11",
                "Wrapper impl @14",
            ]
        "#]]
    .assert_debug_eq(&implementors("src/lib.rs", src, "fmt::Display"));
    assert_eq!(implementors("src/lib.rs", src, "From"), ["Circle impl @18"]);
    assert!(implementors("src/lib.rs", src, "Circle").is_empty());
    // Marker traits are implemented `unsafe impl` (rayon-core's `JobRef`).
    let unsafe_src =
        "pub struct JobRef;\nunsafe impl Sync for JobRef {}\nunsafe impl<T> Send for Own<T> {}\n";
    assert_eq!(
        implementors("src/job.rs", unsafe_src, "Sync"),
        ["JobRef impl @2"]
    );
    assert_eq!(
        implementors("src/job.rs", unsafe_src, "Send"),
        ["Own impl @3"]
    );
}

#[test]
fn python_bases() {
    let src = r#"
import abc
from typing import Generic, TypeVar
T = TypeVar("T")

class Base(abc.ABC):
    pass

class Child(Base):
    pass

@dataclass(frozen=True)
class Data(Base, Generic[T], metaclass=abc.ABCMeta):
    x: int = 0

class Multi(
    mod.Base,  # comment
    Other,
):
    pass

class NotIt(BaseX):
    pass
"#;
    expect_test::expect![[r#"
            [
                "Child class @9",
                "Data class @12",
                "Multi class @16",
            ]
        "#]]
    .assert_debug_eq(&implementors("app/models.py", src, "Base"));
    assert_eq!(implementors("app/models.py", src, "ABC"), ["Base class @6"]);
    assert_eq!(
        implementors("app/models.py", src, "Generic"),
        ["Data class @12"]
    );
}

#[test]
fn java_extends_and_implements() {
    let src = r#"
package demo;
public interface Shape { double area(); }
interface Solid extends Shape, java.io.Serializable { }
public abstract class Base<T> implements Shape, Comparable<Base<T>> {
    public double area() { return 0; }
}
public class Circle extends Base<Integer>
        implements Cloneable {
}
enum Kind implements demo.Shape { A; public double area() { return 1; } }
record Pair(int a, int b) implements Shape { public double area() { return a * b; } }
class Plain { }
"#;
    expect_test::expect![[r#"
            [
                "Solid interface @4",
                "Base class @5",
                "Kind enum @11",
                "Pair class @12",
            ]
        "#]]
    .assert_debug_eq(&implementors("src/Demo.java", src, "Shape"));
    assert_eq!(
        implementors("src/Demo.java", src, "Base"),
        ["Circle class @8"]
    );
    assert_eq!(
        implementors("src/Demo.java", src, "Cloneable"),
        ["Circle class @8"]
    );
}

#[test]
fn typescript_and_javascript() {
    let ts = r#"
export interface Shape { area(): number; }
interface Solid extends Shape, Named<string> { volume(): number; }
export abstract class Base<T> implements Shape {
  area(): number { return 0; }
}
export class Circle extends Base<number> implements Shape, Other {
  r = 1;
}
class Plain {}
"#;
    expect_test::expect![[r#"
            [
                "Solid interface @3",
                "Base class @4",
                "Circle class @7",
            ]
        "#]]
    .assert_debug_eq(&implementors("src/shapes.ts", ts, "Shape"));
    assert_eq!(
        implementors("src/shapes.ts", ts, "Base"),
        ["Circle class @7"]
    );
    let js = r#"
class Animal { speak() {} }
class Dog extends Animal { speak() { return 1; } }
export class Puppy extends mixins.Animal {}
const Cat = class extends Animal {};
"#;
    expect_test::expect![[r#"
            [
                "Dog class @3",
                "Puppy class @4",
                "Cat class @5",
            ]
        "#]]
    .assert_debug_eq(&implementors("web/zoo.js", js, "Animal"));
}

#[test]
fn csharp_colon_lists() {
    let src = r#"
namespace Demo {
    public interface IShape { double Area(); }
    public interface ISolid : IShape { double Volume(); }
    public class Circle : Base<int>, IShape where T : class
    {
        public double Area() => 0;
    }
    public struct Point : System.IEquatable<Point>, Demo.IShape { public double Area() => 0; }
    public record Person(string Name) : IShape { public double Area() => 0; }
    public class Plain { }
}
"#;
    expect_test::expect![[r#"
            [
                "ISolid interface @4",
                "Circle class @5",
                "Point struct @9",
                "Person class @10",
            ]
        "#]]
    .assert_debug_eq(&implementors("src/Demo.cs", src, "IShape"));
    assert_eq!(
        implementors("src/Demo.cs", src, "IEquatable"),
        ["Point struct @9"]
    );
}

#[test]
fn cpp_base_clauses() {
    let src = r#"
namespace geo {
class Shape { public: virtual double area() const = 0; };
class Circle final : public Shape {
public:
    double area() const override { return 1; }
};
template <typename T>
struct Boxed : private geo::Shape, virtual public Other<T> {
    double area() const override { return 0; }
};
class Plain { };
}
"#;
    expect_test::expect![[r#"
            [
                "Circle class @4",
                "Boxed struct @8",
            ]
        "#]]
    .assert_debug_eq(&implementors("src/geo.cpp", src, "Shape"));
    assert_eq!(
        implementors("src/geo.cpp", src, "Other"),
        ["Boxed struct @8"]
    );
}

#[test]
fn ruby_superclass() {
    let src = r#"
class Base
end

class Child < Base
  def go; end
end

class Deep < Outer::Base; end
class Other < BaseX
end
"#;
    expect_test::expect![[r#"
            [
                "Child class @5",
                "Deep class @9",
            ]
        "#]]
    .assert_debug_eq(&implementors("lib/m.rb", src, "Base"));
}

#[test]
fn php_extends_and_implements() {
    let src = r#"<?php
namespace App;
interface HasName { public function name(): string; }
interface Named extends HasName {}
abstract class Model implements \App\HasName, \JsonSerializable {
    public function name(): string { return ""; }
}
class User extends Model {}
class Plain {}
"#;
    expect_test::expect![[r#"
            [
                "Named interface @4",
                "Model class @5",
            ]
        "#]]
    .assert_debug_eq(&implementors("src/Model.php", src, "HasName"));
    assert_eq!(
        implementors("src/Model.php", src, "Model"),
        ["User class @8"]
    );
}

#[test]
fn go_method_sets() {
    let src = r#"
package shapes

type Shape interface {
	Area() float64
	Perimeter() float64
}

type Solid interface {
	Shape
	Volume() float64
}

type Circle struct{ r float64 }

func (c Circle) Area() float64      { return 3 * c.r * c.r }
func (c *Circle) Perimeter() float64 { return 6 * c.r }

type Square struct{ s float64 }

func (s Square) Area() float64 { return s.s * s.s }

type Meters float64

func (m Meters) Area() float64      { return 0 }
func (m Meters) Perimeter() float64 { return 0 }
"#;
    expect_test::expect![[r#"
            [
                "Solid interface @9",
                "Circle struct @14",
                "Meters type @23",
            ]
        "#]]
    .assert_debug_eq(&implementors("shapes/shapes.go", src, "Shape"));
    assert!(implementors("shapes/shapes.go", src, "Nothing").is_empty());
}

#[test]
fn headers_and_bare_types() {
    assert_eq!(bare_type("public ns::Base<T>"), "Base");
    assert_eq!(bare_type("virtual public Other<T>"), "Other");
    assert_eq!(bare_type("&'a mut T"), "T");
    assert_eq!(bare_type("mixin(A, B)"), "mixin");
    assert_eq!(bare_type("\\App\\HasName"), "HasName");
    assert_eq!(bare_type("?Sized"), "Sized");
    assert_eq!(
        impl_type_params("impl<'a, T: Shape + 'a, const N: usize, U = ()> X for Y"),
        ["T", "N", "U"]
    );
    assert_eq!(
        bases(Language::Rust, "pub trait A<T>: B<T> + C where T: D"),
        ["B", "C"]
    );
    assert_eq!(
        bases(
            Language::Java,
            "class A<T extends Comparable<T>> extends B implements C"
        ),
        ["B", "C"]
    );
}
