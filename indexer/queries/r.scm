; Tags for R (our own: name <- function(...), S4 / Reference / R6 classes, library()).

(binary_operator lhs: (identifier) @name.definition.function
  rhs: (function_definition)) @definition.function
; Methods inside setRefClass(methods = list(area = function() ...)) / R6Class(public = list(...)).
(argument name: (identifier) @name.definition.function value: (function_definition)) @definition.function
(call function: (identifier) @_class (#any-of? @_class "setClass" "setRefClass" "R6Class")
  arguments: (arguments . (argument value: (string (string_content) @name.definition.class)))) @definition.class
(call function: (identifier) @_class (#any-of? @_class "setClass" "setRefClass")
  arguments: (arguments (argument name: (identifier) @_fields (#any-of? @_fields "fields" "representation" "slots")
    value: (call arguments: (arguments (argument name: (identifier) @name.definition.field) @definition.field)))))
(call function: (identifier) @_generic (#eq? @_generic "setGeneric")
  arguments: (arguments . (argument value: (string (string_content) @name.definition.function)))) @definition.function

(call function: (identifier) @_import
  (#any-of? @_import "library" "require" "requireNamespace" "source" "sys.source" "loadNamespace")
  arguments: (arguments . (argument value: [(identifier) @import.module
                                            (string (string_content) @import.module)]))) @import
(call function: (namespace_operator lhs: (identifier) @import.module rhs: (identifier) @import.name)) @import

(call function: (identifier) @_class (#any-of? @_class "setClass" "setRefClass")
  arguments: (arguments . (argument value: (string (string_content) @parent.child))
    (argument name: (identifier) @_contains (#eq? @_contains "contains")
              value: [(string (string_content) @parent.name) (identifier) @parent.name])))
(call function: (identifier) @_class (#eq? @_class "R6Class")
  arguments: (arguments . (argument value: (string (string_content) @parent.child))
    (argument name: (identifier) @_inherit (#eq? @_inherit "inherit") value: (identifier) @parent.name)))

; == references and context ==

(call function: [(identifier) @name.reference.call
                 (namespace_operator rhs: (identifier) @name.reference.call)])
(extract_operator rhs: (identifier) @name.reference.attribute)

(identifier) @context.identifier
(string) @context.string
