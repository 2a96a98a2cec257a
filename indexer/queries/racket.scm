; Tags for Racket (our own; the grammar only knows lists and symbols, so predicates on the
; head symbol decide what a form is).

; (define (f args) ...) and (define f (lambda ...)) are functions; (define x v) a variable.
(list . (symbol) @_define (#any-of? @_define "define" "define/contract" "define/public"
    "define/private" "define/override" "define/augment" "define/pubment" "define/public-final")
  . (list . (symbol) @name.definition.function)) @definition.function
(list . (symbol) @_define (#eq? @_define "define")
  . (symbol) @name.definition.function
  . (list . (symbol) @_lambda (#any-of? @_lambda "lambda" "λ" "case-lambda"))) @definition.function
(list . (symbol) @_define (#eq? @_define "define")
  . (symbol) @name.definition.class
  . (list . (symbol) @_class (#any-of? @_class "class" "class*" "mixin" "interface"))) @definition.class
(list . (symbol) @_define (#eq? @_define "define")
  . (symbol) @name.definition.variable
  . [(number) (string) (boolean) (quote)]) @definition.variable
(list . (symbol) @_struct (#any-of? @_struct "struct" "define-struct")
  . (symbol) @name.definition.struct) @definition.struct
(list . (symbol) @_syntax (#any-of? @_syntax "define-syntax" "define-syntax-rule")
  . [(symbol) @name.definition.macro (list . (symbol) @name.definition.macro)]) @definition.macro
(list . (symbol) @_field (#any-of? @_field "init-field" "field")
  (symbol) @name.definition.field) @definition.field

(list . (symbol) @_require (#eq? @_require "require")
  [(symbol) @import.module (string) @import.module]) @import
(list . (symbol) @_require (#eq? @_require "require")
  (list . (symbol) @_only (#any-of? @_only "only-in" "prefix-in" "rename-in")
        . [(symbol) (string)] @import.module (symbol) @import.name)) @import

(list . (symbol) @_define (#eq? @_define "define")
  . (symbol) @parent.child
  . (list . (symbol) @_class (#any-of? @_class "class" "class*") . (symbol) @parent.name))

; == references and context ==

(list . (symbol) @name.reference.call)

(symbol) @context.identifier
(string) @context.string
(list . (symbol) @_field (#any-of? @_field "init-field" "field")) @context.field
